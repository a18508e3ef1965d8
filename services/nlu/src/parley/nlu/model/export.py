"""Exporting a trained joint model to ONNX (fp32, and dynamically quantised int8) for the runtime.

The TorchScript-based exporter (``dynamo=False``) is tried first: on this torch it takes ~1.5 s and writes
one self-contained file. The dynamo exporter (~7 s, weights as external data) is the fallback for a torch
that has dropped the old one; its output is folded back into one file.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parley.core.errors import ConfigurationError
from parley.core.logging import get_logger
from parley.nlu.model import codec
from parley.nlu.model.train import TrainedJoint

log = get_logger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("intent_logits", "tag_logits")
#: Largest |torch - onnx| logit difference accepted after export (fp32 rounding is ~1e-5).
EXPORT_TOLERANCE = 1e-3


def _cpu_copy(trained: TrainedJoint) -> torch.nn.Module:
    model = trained.model
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return model.float().eval()


def export_onnx(trained: TrainedJoint, path: Path) -> Path:
    """Write ``trained``'s model as ONNX to ``path`` (batch and sequence axes dynamic) and check it."""
    model = _cpu_copy(trained)
    ids, mask, _ = codec.encode(trained.tokenizer, ["export this sentence, please", "hi"])
    args = (torch.from_numpy(ids), torch.from_numpy(mask))
    started = time.perf_counter()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the result is verified below
        try:
            torch.onnx.export(
                model,
                args,
                str(path),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "intent_logits": {0: "batch"},
                    "tag_logits": {0: "batch", 1: "sequence"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
            exporter = "torchscript"
        except (TypeError, RuntimeError, ValueError) as exc:
            log.info("torchscript onnx export unavailable; using the dynamo exporter", error=str(exc)[:200])
            _export_dynamo(model, args, path)
            exporter = "dynamo"
    seconds = time.perf_counter() - started
    verify(trained, path)
    log.info("onnx model exported", path=str(path), exporter=exporter, export_s=round(seconds, 2))
    return path


def _export_dynamo(model: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path) -> None:
    import onnx  # noqa: PLC0415 - only needed on this fallback

    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    program: Any = torch.onnx.export(
        model,
        args,
        input_names=list(INPUTS),
        output_names=list(OUTPUTS),
        dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
        dynamo=True,
        verbose=False,
    )
    staging = path.with_suffix(".dynamo.onnx")
    program.save(str(staging))
    onnx.save_model(onnx.load(str(staging)), str(path), save_as_external_data=False)
    for leftover in path.parent.glob(staging.name + "*"):
        leftover.unlink()


def _session(path: Path) -> Any:
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify(trained: TrainedJoint, path: Path, texts: tuple[str, ...] = ()) -> float:
    """The largest logit difference between torch and the ONNX file; raises if above tolerance."""
    sample = list(texts or trained.reference_texts[:16] or ("hello", "a somewhat longer sentence to check"))
    ids, mask, _ = codec.encode(trained.tokenizer, sample)
    model = _cpu_copy(trained)
    with torch.inference_mode():
        expected = [t.numpy() for t in model(torch.from_numpy(ids), torch.from_numpy(mask))]
    got = _session(path).run(list(OUTPUTS), {"input_ids": ids, "attention_mask": mask})
    diff = max(float(np.abs(e - g).max()) for e, g in zip(expected, got, strict=True))
    if diff > EXPORT_TOLERANCE:
        raise ConfigurationError(
            f"the exported ONNX model differs from torch by {diff:.2g} (> {EXPORT_TOLERANCE})"
        )
    return diff


class _DropAdvice(logging.Filter):
    """Drops onnxruntime's "consider pre-processing" advice: its symbolic shape inference fails on this
    graph, and per-channel dynamic quantisation already keeps int8 within the agreement checked after."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation: per-channel int8 weights for MatMul/Gemm (activations quantised at run
    time) and int8 word embeddings (Gather), which shrinks the file ~4x and so the load time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source),
                str(target),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm", "Gather"],
            )
    finally:
        root.removeFilter(advice)
    return target
