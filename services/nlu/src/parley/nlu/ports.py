"""What the NLU domain needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt


class Encoder(Protocol):
    """Turns texts into sentence embeddings.

    ``encode`` returns a float32 array of shape ``(len(texts), dimension)`` whose rows have unit L2 norm,
    in the order of ``texts``; implementations must be safe to call from several threads.
    """

    @property
    def name(self) -> str:
        """Identifies the embedding space; a model trained on one encoder is useless with another."""
        ...

    @property
    def dimension(self) -> int:
        """Length of one embedding."""
        ...

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (one forward pass per batch, not per text)."""
        ...
