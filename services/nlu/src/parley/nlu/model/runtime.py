"""Serving a saved joint model with ONNX Runtime and the ``tokenizers`` library: no torch, no transformers.

Importing torch costs seconds and transformers more; onnxruntime and tokenizers together well under one,
so a model folder loads (and answers its first parse) in a fresh process in well under two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tokenizers import Tokenizer

from parley.core.errors import ConfigurationError, NotFoundError
from parley.nlu.model import codec
from parley.nlu.model.codec import Prediction

METADATA_FILE = "metadata.json"
LABELS_FILE = "labels.json"
TOKENIZER_FILE = "tokenizer.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
OUTPUTS = ["intent_logits", "tag_logits"]

#: ``fp16`` and ``torch-fp32`` serve the saved torch weights with torch (see ``torch_runtime``): fp16 is
#: the GPU path, torch-fp32 a reference for checking it on any machine.
Precision = Literal["auto", "fp32", "int8", "fp16", "torch-fp32"]
TORCH_PRECISIONS = ("fp16", "torch-fp32")


def onnx_session(path: Path, device: str = "cpu", num_threads: int = 0) -> Any:
    """An ONNX Runtime session on ``device`` with full graph optimisation."""
    import onnxruntime as ort  # noqa: PLC0415 - keeps importing this module free of native libraries

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if num_threads > 0:
        options.intra_op_num_threads = num_threads
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigurationError(
                "device=cuda needs onnxruntime-gpu; this onnxruntime has no CUDA provider"
            )
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


class JointPredictor:
    """Intent probabilities and entity spans for texts, from a model folder written by the store.

    Thread-safe: an ONNX Runtime session may run from several threads at once, and the tokenizer is
    only read. Each call batches its texts (sorted by length, so little padding) ``batch_size`` at a time.
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Tokenizer,
        *,
        intents: Sequence[str],
        tags: Sequence[str],
        temperature: float,
        multi_label: bool,
        oos_threshold: float,
        metadata: dict[str, Any] | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        self._session = session
        self._tokenizer = tokenizer
        self.intents = tuple(intents)
        self.tags = tuple(tags)
        self.temperature = float(temperature)
        self.multi_label = bool(multi_label)
        self.oos_threshold = float(oos_threshold)
        self.metadata = metadata or {}
        self.precision = precision
        self.batch_size = batch_size

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @classmethod
    def load(
        cls,
        path: Path | str,
        *,
        precision: Precision = "auto",
        device: Literal["cpu", "cuda"] = "cpu",
        num_threads: int = 0,
        batch_size: int = 32,
    ) -> JointPredictor:
        """The predictor for the model folder ``path``.

        ``precision="auto"`` takes the int8 model on CPU where the store kept one (it does only when it
        agreed with fp32 on the reference texts), else fp32; on CUDA the fp16 torch weights where the
        folder has them (``JointConfig.torch_weights``), else fp32 ONNX on ONNX Runtime's CUDA provider.
        """
        folder = Path(path)
        try:
            metadata = json.loads((folder / METADATA_FILE).read_text())
            labels = json.loads((folder / LABELS_FILE).read_text())
            tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
            settings = {
                "intents": [str(i) for i in labels["intents"]],
                "tags": [str(t) for t in labels["tags"]],
                "temperature": float(metadata["temperature"]),
                "multi_label": bool(metadata["multi_label"]),
                "oos_threshold": float(metadata["oos_threshold"]),
            }
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{folder} is not a joint NLU model folder: {exc.filename} is missing"
            ) from exc
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file; json/KeyError the rest
            raise ConfigurationError(f"cannot read the joint NLU model in {folder}: {exc!r}") from exc
        chosen = precision
        if chosen == "auto":
            if device == "cuda":
                chosen = "fp16" if (folder / "model.fp16.safetensors").is_file() else "fp32"
            else:
                chosen = "int8" if (folder / INT8_FILE).is_file() else "fp32"
        if chosen in TORCH_PRECISIONS:
            from parley.nlu.model.torch_runtime import TorchSession  # noqa: PLC0415 - imports torch

            return cls(
                TorchSession.load(folder, labels, device, half=chosen == "fp16"),
                tokenizer,
                **settings,
                metadata=metadata,
                precision=chosen,
                batch_size=batch_size,
            )
        model_file = folder / (INT8_FILE if chosen == "int8" else FP32_FILE)
        if not model_file.is_file():
            raise NotFoundError(f"{folder} has no {chosen} model ({model_file.name})")
        return cls(
            onnx_session(model_file, device, num_threads),
            tokenizer,
            **settings,
            metadata=metadata,
            precision=chosen,
            batch_size=batch_size,
        )

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[Any]]:
        """Raw (intent logits, tag logits padded to the longest text, encodings) of one batch."""
        ids, mask, encodings = codec.encode(self._tokenizer, texts)
        intent_logits, tag_logits = self._session.run(OUTPUTS, {"input_ids": ids, "attention_mask": mask})
        return intent_logits, tag_logits, encodings

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, in order."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not one string")
        results: list[Prediction | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            intent_logits, tag_logits, encodings = self.logits([texts[i] for i in chunk])
            batch = codec.predictions(
                intent_logits,
                tag_logits,
                encodings,
                intents=self.intents,
                tags=self.tags,
                temperature=self.temperature,
                multi_label=self.multi_label,
                oos_threshold=self.oos_threshold,
            )
            for i, prediction in zip(chunk, batch, strict=True):
                results[i] = prediction
        return [p for p in results if p is not None]
