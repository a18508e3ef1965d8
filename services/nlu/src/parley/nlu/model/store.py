"""Versioned joint-model folders on disk: ONNX weights, tokenizer, labels, config and ``metadata.json``.

A folder is assembled under a temporary name inside the store and renamed into place, so a reader never
sees half a model and two processes saving at once both end with a complete folder each. Looking models
up and loading one never imports torch; only :meth:`JointModelStore.save` (which exports) does.

Layout of one model folder::

    metadata.json      version, encoder, data hash, metrics, temperature, out-of-scope threshold, ...
    config.json        the JointConfig it was trained with (multi_label resolved)
    labels.json        {"intents": [...], "tags": ["O", "B-x", "I-x", ...]}
    tokenizer.json     the fast tokenizer with its truncation and padding settings
    tokenizer_config.json, vocab.txt, special_tokens_map.json   copied from the encoder, when present
    model.onnx         fp32 ONNX graph
    model.int8.onnx    dynamically quantised graph, only when it agreed with fp32 (see ``quantize``)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parley.core.logging import get_logger
from parley.nlu.model.codec import Prediction
from parley.nlu.model.runtime import (
    FP32_FILE,
    INT8_FILE,
    LABELS_FILE,
    METADATA_FILE,
    TOKENIZER_FILE,
    JointPredictor,
    Precision,
)

if TYPE_CHECKING:
    from parley.nlu.model.train import TrainedJoint

log = get_logger(__name__)

FORMAT = "parley-nlu-joint/1"
CONFIG_FILE = "config.json"
#: Tokenizer files of the encoder folder copied next to the model, for tools that want them.
TOKENIZER_EXTRAS = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
)


@dataclass(frozen=True)
class JointModelInfo:
    """What a saved model is, read from its ``metadata.json``."""

    version: str
    path: Path
    encoder: str
    data_hash: str
    intents: tuple[str, ...]
    multi_label: bool
    precision: str
    created_at: datetime
    metadata: dict[str, Any]

    @classmethod
    def read(cls, folder: Path) -> JointModelInfo:
        """The metadata of ``folder``; raises ``OSError``/``ValueError``/``KeyError`` if unreadable."""
        data = json.loads((folder / METADATA_FILE).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"not a joint model folder (format {data.get('format')!r})")
        return cls(
            version=str(data["version"]),
            path=folder,
            encoder=str(data["encoder"]),
            data_hash=str(data["data_hash"]),
            intents=tuple(str(i) for i in data["intents"]),
            multi_label=bool(data["multi_label"]),
            precision=str(data["precision"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            metadata=data,
        )


def _latency_ms(predictor: JointPredictor, texts: list[str]) -> float:
    """Median single-text latency over ``texts`` (after one warm-up call)."""
    predictor.predict(texts[:1])
    times = []
    for text in texts:
        started = time.perf_counter()
        predictor.predict([text])
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _decision(prediction: Prediction, multi_label: bool) -> tuple[str | None, frozenset[str]]:
    """What a caller acts on: the top intent (or out of scope) and, multi-label, every intent >= 0.5."""
    if not multi_label:
        return prediction.intent, frozenset()
    return prediction.intent, frozenset(k for k, v in prediction.intent_probs.items() if v >= 0.5)


def _agreement(
    reference: list[Prediction], other: list[Prediction], multi_label: bool
) -> tuple[float, float, float]:
    """(intent-decision agreement, tag-span agreement, largest top-probability difference)."""
    if not reference:
        return 1.0, 1.0, 0.0
    pairs = list(zip(reference, other, strict=True))
    same_intents = sum(_decision(a, multi_label) == _decision(b, multi_label) for a, b in pairs)
    same_tags = sum([t[:3] for t in a.tags] == [t[:3] for t in b.tags] for a, b in pairs)
    gap = max(abs(max(a.intent_probs.values()) - max(b.intent_probs.values())) for a, b in pairs)
    return same_intents / len(pairs), same_tags / len(pairs), gap


class JointModelStore:
    """The joint models in one folder: one sub-folder per version."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def save(
        self,
        trained: TrainedJoint,
        *,
        data_hash: str | None = None,
        project: str = "",
        quantize: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> JointModelInfo:
        """Export ``trained`` to a new version folder and return its metadata.

        ``data_hash`` defaults to the hash of the examples it was trained on; pass the project's own
        (``Project.training_data_hash()``) to look models up by that. ``quantize`` defaults to the config.
        """
        from parley.nlu.model.export import export_onnx, quantize_int8  # noqa: PLC0415 - imports torch

        created = datetime.now(UTC)
        hash_ = data_hash or trained.data_hash
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            trained.tokenizer.save(str(staging / TOKENIZER_FILE))
            for name in TOKENIZER_EXTRAS:
                source = trained.encoder_path / name
                if source.is_file():
                    shutil.copy2(source, staging / name)
            (staging / LABELS_FILE).write_text(
                json.dumps({"intents": list(trained.intents), "tags": list(trained.tags)}, indent=2) + "\n"
            )
            (staging / CONFIG_FILE).write_text(json.dumps(trained.config.to_dict(), indent=2) + "\n")
            started = time.perf_counter()
            export_onnx(trained, staging / FP32_FILE)
            metrics = dict(trained.metrics)
            metrics["export_seconds"] = round(time.perf_counter() - started, 3)
            metadata: dict[str, Any] = {
                "format": FORMAT,
                "version": "",
                "project": project,
                "encoder": trained.config.encoder,
                "data_hash": hash_,
                "intents": list(trained.intents),
                "tags": list(trained.tags),
                "multi_label": trained.multi_label,
                "temperature": trained.temperature,
                "oos_threshold": trained.oos_threshold,
                "precision": "fp32",
                "max_len": trained.config.max_len,
                "metrics": metrics,
                "created_at": created.isoformat(),
                **(extra or {}),
            }
            keep_torch = trained.config.torch_weights
            if keep_torch if keep_torch is not None else trained.config.device == "cuda":
                from parley.nlu.model.torch_runtime import save_torch_weights  # noqa: PLC0415

                save_torch_weights(trained, staging)
                metadata["torch_weights"] = "fp16"
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
            if trained.config.quantize if quantize is None else quantize:
                metadata["precision"], quantized = self._quantize(trained, staging, quantize_int8)
                metrics.update(quantized)
            return self._publish(staging, metadata, created, hash_)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _quantize(
        self, trained: TrainedJoint, staging: Path, quantize_int8: Any
    ) -> tuple[str, dict[str, float]]:
        """Quantise, compare with fp32 on the reference texts, and keep int8 only if it agrees."""
        quantize_int8(staging / FP32_FILE, staging / INT8_FILE)
        fp32 = JointPredictor.load(staging, precision="fp32")
        int8 = JointPredictor.load(staging, precision="int8")
        texts = list(trained.reference_texts) or ["hello"]
        top, tags, gap = _agreement(fp32.predict(texts), int8.predict(texts), trained.multi_label)
        timing = texts[:20]
        fp32_ms, int8_ms = _latency_ms(fp32, timing), _latency_ms(int8, timing)
        keep = min(top, tags) >= trained.config.quantize_min_agreement
        if not keep:
            (staging / INT8_FILE).unlink()
        log.info(
            "int8 quantisation checked",
            kept=keep,
            intent_agreement=round(top, 4),
            tag_agreement=round(tags, 4),
            fp32_ms=round(fp32_ms, 2),
            int8_ms=round(int8_ms, 2),
        )
        return ("int8" if keep else "fp32"), {
            "int8_intent_agreement": top,
            "int8_tag_agreement": tags,
            "int8_max_top_prob_gap": gap,
            "fp32_latency_ms_p50": round(fp32_ms, 3),
            "int8_latency_ms_p50": round(int8_ms, 3),
            "int8_kept": float(keep),
        }

    def _publish(
        self, staging: Path, metadata: dict[str, Any], created: datetime, hash_: str
    ) -> JointModelInfo:
        for attempt in range(100):
            version = f"{created:%Y%m%dT%H%M%S%fZ}-{hash_[:8]}" + (f"-{attempt}" if attempt else "")
            metadata["version"] = version
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
            target = self.root / version
            try:
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    continue  # another process took this name first; take the next one
                raise
            info = JointModelInfo.read(target)
            log.info("joint nlu model saved", version=version, path=str(target), precision=info.precision)
            return info
        raise FileExistsError(f"no free version name for a model in {self.root}")

    def models(self) -> list[JointModelInfo]:
        """Every readable joint model, newest first; other or unreadable folders are skipped."""
        if not self.root.is_dir():
            return []
        found: list[JointModelInfo] = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not (folder / METADATA_FILE).is_file():
                continue
            try:
                found.append(JointModelInfo.read(folder))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.debug("skipping a folder that is no joint model", path=str(folder), error=str(exc))
        found.sort(key=lambda m: (m.created_at, m.version), reverse=True)
        return found

    def newest(self, data_hash: str, encoder: str | None = None) -> JointModelInfo | None:
        """The newest model trained on data with ``data_hash`` (and over ``encoder``, if given)."""
        return next(
            (
                m
                for m in self.models()
                if m.data_hash == data_hash and (encoder is None or m.encoder == encoder)
            ),
            None,
        )

    def load(
        self, info: JointModelInfo | Path | str, *, precision: Precision = "auto", **options: Any
    ) -> JointPredictor:
        """The ONNX predictor of a saved model (``options`` go to :meth:`JointPredictor.load`)."""
        path = info.path if isinstance(info, JointModelInfo) else Path(info)
        return JointPredictor.load(path, precision=precision, **options)
