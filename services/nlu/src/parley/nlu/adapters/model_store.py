"""Trained models on disk: one versioned folder per model with the head's weights and ``metadata.json``.

A folder is written under a temporary name and renamed into place, so a reader never sees half a model
and two processes training at once both end with a complete folder each.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from parley.core.logging import get_logger
from parley.nlu.domain.classifier import HeadConfig, IntentClassifier

log = get_logger(__name__)

METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "head.pt"
FORMAT = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a saved model is: the metadata written next to its weights."""

    version: str
    path: Path
    project: str
    encoder: str
    dimension: int
    intents: tuple[str, ...]
    data_hash: str
    training_accuracy: float
    training_examples: int
    train_seconds: float
    created_at: datetime
    head: HeadConfig

    def to_json(self) -> dict[str, Any]:
        """The metadata as written to ``metadata.json`` (the path is where it lies, not part of it)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "project": self.project,
            "encoder": self.encoder,
            "dimension": self.dimension,
            "intents": list(self.intents),
            "data_hash": self.data_hash,
            "training_accuracy": self.training_accuracy,
            "training_examples": self.training_examples,
            "train_seconds": self.train_seconds,
            "created_at": self.created_at.isoformat(),
            "head": self.head.to_dict(),
        }

    @classmethod
    def from_json(cls, path: Path, data: dict[str, Any]) -> ModelInfo:
        """Metadata read back from the folder ``path``; raises ``KeyError``/``ValueError`` if malformed."""
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported model format {data.get('format')!r}")
        return cls(
            version=str(data["version"]),
            path=path,
            project=str(data["project"]),
            encoder=str(data["encoder"]),
            dimension=int(data["dimension"]),
            intents=tuple(str(i) for i in data["intents"]),
            data_hash=str(data["data_hash"]),
            training_accuracy=float(data["training_accuracy"]),
            training_examples=int(data["training_examples"]),
            train_seconds=float(data["train_seconds"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            head=HeadConfig.from_dict(data["head"]),
        )


class ModelStore:
    """The models in one folder (``PARLEY_NLU_MODEL_DIR``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(
        self,
        classifier: IntentClassifier,
        *,
        project: str,
        encoder: str,
        data_hash: str,
        training_accuracy: float,
        training_examples: int,
        train_seconds: float,
    ) -> ModelInfo:
        """Write a new model folder and return its metadata."""
        created = datetime.now(UTC)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            torch.save(classifier.state_dict(), staging / WEIGHTS_FILE)
            for attempt in range(100):
                version = f"{created:%Y%m%dT%H%M%SZ}-{data_hash[:8]}" + (f"-{attempt}" if attempt else "")
                info = ModelInfo(
                    version=version,
                    path=self.root / version,
                    project=project,
                    encoder=encoder,
                    dimension=classifier.dimension,
                    intents=classifier.intents,
                    data_hash=data_hash,
                    training_accuracy=training_accuracy,
                    training_examples=training_examples,
                    train_seconds=train_seconds,
                    created_at=created,
                    head=classifier.config,
                )
                (staging / METADATA_FILE).write_text(json.dumps(info.to_json(), indent=2) + "\n")
                try:
                    os.rename(staging, info.path)
                except OSError:
                    if info.path.exists():
                        continue  # another model got this version name first; take the next one
                    raise
                return info
            raise FileExistsError(f"no free version name for a model in {self.root}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def models(self) -> list[ModelInfo]:
        """Every readable model, newest first; unreadable folders are logged and skipped."""
        if not self.root.is_dir():
            return []
        found: list[ModelInfo] = []
        for folder in self.root.iterdir():
            meta = folder / METADATA_FILE
            if folder.name.startswith(".") or not meta.is_file():
                continue
            try:
                found.append(ModelInfo.from_json(folder, json.loads(meta.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable model", path=str(folder), error=str(exc))
        found.sort(key=lambda m: (m.created_at, m.version), reverse=True)
        return found

    def newest(self, data_hash: str, encoder: str) -> ModelInfo | None:
        """The newest model trained on data with ``data_hash`` over ``encoder``, if any."""
        return next((m for m in self.models() if m.data_hash == data_hash and m.encoder == encoder), None)

    def load(self, info: ModelInfo) -> IntentClassifier:
        """The classifier saved in ``info.path``."""
        state = torch.load(info.path / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        return IntentClassifier.from_state(info.intents, state, info.head)
