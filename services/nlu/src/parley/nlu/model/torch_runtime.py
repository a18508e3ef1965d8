"""Serving a saved joint model with torch on a GPU, in half precision.

ONNX Runtime serves the CPU path (int8 or fp32, no torch). On a CUDA device the fastest path is torch
itself with fp16 weights: the model folder then carries ``model.fp16.safetensors`` and the encoder's
architecture (``encoder/config.json``), so no encoder folder, download or fp32 copy is needed to serve.
:class:`TorchSession` answers the same ``run(outputs, feeds)`` call as an ONNX Runtime session, so
:class:`~parley.nlu.model.runtime.JointPredictor` (tokenising, batching, calibration, decoding) is shared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from parley.core.errors import ConfigurationError, NotFoundError

if TYPE_CHECKING:
    from parley.nlu.model.train import TrainedJoint

TORCH_FILE = "model.fp16.safetensors"
ENCODER_CONFIG_DIR = "encoder"


def save_torch_weights(trained: TrainedJoint, folder: Path) -> Path:
    """Write the fp16 weights and the encoder's architecture of ``trained`` into ``folder``."""
    from safetensors.torch import save_file  # noqa: PLC0415 - torch-side only

    model = trained.model
    model.encoder.config.save_pretrained(folder / ENCODER_CONFIG_DIR)
    state = {name: t.detach().to("cpu").half().contiguous() for name, t in model.state_dict().items()}
    save_file(state, str(folder / TORCH_FILE))
    return folder / TORCH_FILE


class TorchSession:
    """The joint model in torch, called like an ONNX Runtime session (``run(output_names, feeds)``)."""

    def __init__(self, model: Any, device: Any, dtype: Any) -> None:
        self._model = model
        self._device = device
        self._dtype = dtype

    @classmethod
    def load(cls, folder: Path, labels: dict[str, Sequence[str]], device: str, half: bool) -> TorchSession:
        """The model in ``folder`` on ``device``; fp16 weights when ``half``, else upcast to fp32."""
        try:
            import torch  # noqa: PLC0415 - seconds to import: only when torch serving is asked for
            from safetensors.torch import load_file  # noqa: PLC0415
            from transformers import AutoConfig, AutoModel  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigurationError(
                f"serving with torch needs torch and transformers installed ({exc.name} is missing)"
            ) from exc

        from parley.nlu.model.joint import JointModel  # noqa: PLC0415 - imports torch

        weights = folder / TORCH_FILE
        if not weights.is_file():
            raise NotFoundError(f"{folder} has no torch weights ({TORCH_FILE}); train with torch_weights on")
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigurationError("device=cuda, but torch sees no CUDA device; use cpu")
        config = json.loads((folder / "config.json").read_text())
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(folder / ENCODER_CONFIG_DIR))
        model = JointModel(
            encoder,
            len(labels["intents"]) + (0 if config.get("multi_label") else 1),
            len(labels["tags"]),
            dropout=0.0,
            multi_label=bool(config.get("multi_label")),
        )
        dtype = torch.float16 if half else torch.float32
        state = {k: v.to(dtype) for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state)
        target = torch.device(device)
        return cls(model.to(device=target, dtype=dtype).eval(), target, dtype)

    def run(self, output_names: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``[intent_logits, tag_logits]`` (in the order asked for) as float32 numpy arrays."""
        import torch  # noqa: PLC0415 - already imported by load

        with torch.inference_mode():
            ids = torch.from_numpy(np.asarray(feeds["input_ids"], dtype=np.int64)).to(self._device)
            mask = torch.from_numpy(np.asarray(feeds["attention_mask"], dtype=np.int64)).to(self._device)
            intent, tags = self._model(ids, mask)
            out = {"intent_logits": intent, "tag_logits": tags}
            return [out[name].float().cpu().numpy() for name in output_names]
