"""The fine-tuned joint intent + entity model: training (torch), ONNX export and fast serving.

The names below are resolved lazily, so ``from parley.nlu.model.runtime import JointPredictor`` in a
serving process pays only for the runtime (onnxruntime, tokenizers, numpy). Training lives in
:mod:`parley.nlu.model.train` and export in :mod:`parley.nlu.model.export`; they import torch and
transformers (seconds) and are never imported from here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.nlu.model.codec import Prediction, TagSpan
    from parley.nlu.model.config import JointConfig
    from parley.nlu.model.data import Example, ExampleLike, Span, SpanLike
    from parley.nlu.model.runtime import JointPredictor
    from parley.nlu.model.store import JointModelInfo, JointModelStore

_WHERE = {
    "Prediction": "codec",
    "TagSpan": "codec",
    "JointConfig": "config",
    "Example": "data",
    "ExampleLike": "data",
    "Span": "data",
    "SpanLike": "data",
    "JointPredictor": "runtime",
    "JointModelInfo": "store",
    "JointModelStore": "store",
}

__all__ = [
    "Example",
    "ExampleLike",
    "JointConfig",
    "JointModelInfo",
    "JointModelStore",
    "JointPredictor",
    "Prediction",
    "Span",
    "SpanLike",
    "TagSpan",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
