"""The embedding + intent-head model seen through the parser's :class:`IntentModel` port."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from parley.nlu.domain.classifier import IntentClassifier
from parley.nlu.ports import Encoder


@dataclass(frozen=True)
class HeadPrediction:
    """Intent probabilities of one text (this model tags no entities)."""

    intent_probs: dict[str, float]
    tags: tuple[()] = field(default=())


class HeadModel:
    """Sentence embeddings from the encoder, intent confidences from the trained head."""

    def __init__(self, encoder: Encoder, classifier: IntentClassifier, version: str) -> None:
        if encoder.dimension != classifier.dimension:
            raise ValueError(
                f"encoder {encoder.name} gives {encoder.dimension}-d embeddings, "
                f"the intent head expects {classifier.dimension}"
            )
        self._encoder = encoder
        self._classifier = classifier
        self._version = version

    @property
    def intents(self) -> tuple[str, ...]:
        return self._classifier.intents

    @property
    def version(self) -> str:
        return self._version

    def predict(self, texts: Sequence[str]) -> list[HeadPrediction]:
        """One encoder call for all ``texts``."""
        if not texts:
            return []
        rows = self._classifier.predict(self._encoder.encode(texts))
        names = self._classifier.intents
        return [HeadPrediction({n: float(p) for n, p in zip(names, row, strict=True)}) for row in rows]
