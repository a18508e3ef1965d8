"""The intent head: an open-set cosine classifier trained on sentence embeddings.

Each intent has a learned prototype direction; the logit of an intent is ``scale * cos(text, prototype)``.
Next to the intents sits a fixed "none of these" logit, ``scale * margin``, that training never targets.
In-domain texts learn to beat it by far, so they get confidences near ``1 - label_smoothing``; a text far
from every prototype (noise, another domain) leaves most of the probability on "none of these", so every
intent's confidence is low and the parser falls back. That mass is dropped from the ranking, which is why
a ranking's confidences sum to at most 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm


@dataclass(frozen=True)
class HeadConfig:
    """Hyper-parameters of the head; stored with each model so loading rebuilds the same head."""

    #: Logit scale (an inverse temperature): cosines in [-1, 1] become logits in [-scale, scale].
    scale: float = 16.0
    #: Cosine an intent's prototype must beat for that intent to outweigh "none of these".
    margin: float = 0.3
    epochs: int = 150
    batch_size: int = 256
    learning_rate: float = 0.05
    weight_decay: float = 0.01
    #: Keeps confidences below 1 so they stay informative (and the head from over-fitting tiny data).
    label_smoothing: float = 0.1
    seed: int = 13

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeadConfig:
        """The config from :meth:`to_dict` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class CosineHead(nn.Module):
    """Prototype per intent plus a constant "none of these" logit as the last column."""

    def __init__(self, n_intents: int, dimension: int, scale: float, margin: float) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.zeros(n_intents, dimension))
        self.scale = scale
        self.margin = margin

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``(n, n_intents + 1)``."""
        cosines = F.normalize(embeddings, dim=-1) @ F.normalize(self.prototypes, dim=-1).T
        none = torch.full_like(cosines[:, :1], self.margin)
        return self.scale * torch.cat([cosines, none], dim=1)


class IntentClassifier:
    """A trained head and the intent names its outputs mean."""

    def __init__(self, intents: Sequence[str], head: CosineHead, config: HeadConfig) -> None:
        self.intents = tuple(intents)
        self.config = config
        self._head = head.eval()

    @classmethod
    def fit(
        cls,
        embeddings: npt.NDArray[np.float32],
        labels: Sequence[int],
        intents: Sequence[str],
        config: HeadConfig | None = None,
        progress: bool = False,
    ) -> IntentClassifier:
        """Train a head on ``embeddings`` labelled with indexes into ``intents``.

        Deterministic: prototypes start at the class centroids and mini-batches are drawn from a
        generator seeded with ``config.seed``, so the same data always gives the same weights.
        """
        config = config or HeadConfig()
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32)).clone()
        y = torch.tensor(list(labels), dtype=torch.long)
        n_intents = len(intents)
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(
                f"need one label per embedding, got {x.shape[0]} embeddings, {y.shape[0]} labels"
            )
        missing = sorted(set(range(n_intents)) - set(y.tolist()))
        if missing:
            raise ValueError(f"intents without examples: {[intents[i] for i in missing]}")
        head = CosineHead(n_intents, x.shape[1], config.scale, config.margin)
        with torch.no_grad():
            head.prototypes.copy_(torch.stack([x[y == k].mean(dim=0) for k in range(n_intents)]))
        smoothing = config.label_smoothing
        targets = F.one_hot(y, n_intents).float() * (1 - smoothing) + smoothing / n_intents
        generator = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.AdamW(
            head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        head.train()
        with torch.enable_grad():
            epochs = tqdm(
                range(config.epochs),
                desc="training intent head",
                unit="epoch",
                leave=False,
                disable=None if progress else True,
            )
            for _ in epochs:
                order = torch.randperm(x.shape[0], generator=generator)
                for start in range(0, x.shape[0], config.batch_size):
                    batch = order[start : start + config.batch_size]
                    log_probs = head(x[batch]).log_softmax(dim=-1)[:, :n_intents]
                    loss = -(targets[batch] * log_probs).sum(dim=-1).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                epochs.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        return cls(intents, head, config)

    @classmethod
    def from_state(
        cls, intents: Sequence[str], state: Mapping[str, torch.Tensor], config: HeadConfig
    ) -> IntentClassifier:
        """A classifier from weights saved with :meth:`state_dict`."""
        prototypes = state["prototypes"]
        if prototypes.shape[0] != len(intents):
            raise ValueError(f"weights hold {prototypes.shape[0]} intents, metadata names {len(intents)}")
        head = CosineHead(len(intents), prototypes.shape[1], config.scale, config.margin)
        head.load_state_dict(dict(state))
        return cls(intents, head, config)

    @property
    def dimension(self) -> int:
        """The embedding length the head expects."""
        return int(self._head.prototypes.shape[1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The weights, for saving."""
        return {k: v.detach().clone() for k, v in self._head.state_dict().items()}

    def predict(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Confidences of shape ``(n, len(intents))``; each row sums to at most 1 (see module doc)."""
        x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        with torch.inference_mode():
            probs = self._head(x).softmax(dim=-1)[:, : len(self.intents)]
        return probs.numpy().astype(np.float32, copy=False)

    def accuracy(self, embeddings: npt.NDArray[np.float32], labels: Sequence[int]) -> float:
        """Share of ``embeddings`` whose best intent is their label."""
        if len(labels) == 0:
            return 0.0
        best = self.predict(embeddings).argmax(axis=1)
        return float((best == np.asarray(labels)).mean())
