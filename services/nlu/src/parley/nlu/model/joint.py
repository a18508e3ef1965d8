"""The joint model: one transformer encoder, an intent head on the mean-pooled sentence and a BIO tag head.

Sharing the encoder makes one forward pass answer both questions, and the two losses regularise each
other on small projects. The model returns raw logits; the probabilities (softmax or sigmoid, with the
calibration temperature) are computed outside, identically for torch and ONNX (see ``codec``).
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from parley.core.errors import ConfigurationError
from parley.nlu.model import codec
from parley.nlu.model.config import JointConfig


def load_encoder(config: JointConfig) -> tuple[Any, Tokenizer]:
    """The pretrained encoder (transformers ``AutoModel``) and its fast tokenizer, configured for training.

    Loaded from a local folder only (``local_files_only``): nothing is ever downloaded.
    """
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415 - seconds to import; train-time only

    path = config.resolved_encoder_path()
    try:
        hf_tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        encoder: Any = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the encoder {config.encoder!r} from {path}: {exc}") from exc
    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise ConfigurationError(f"the encoder at {path} has no fast (tokenizers) tokenizer; one is required")
    pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else 0
    pad_token = hf_tokenizer.pad_token or "[PAD]"
    return encoder, codec.configure(backend, config.max_len, int(pad_id), str(pad_token))


class JointModel(nn.Module):
    """Encoder → (mean-pooled sentence → intent logits, tokens → BIO tag logits)."""

    def __init__(
        self, encoder: Any, num_intents: int, num_tags: int, dropout: float, multi_label: bool
    ) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.intent_head = nn.Linear(hidden, num_intents)
        self.tag_head = nn.Linear(hidden, num_tags)
        if multi_label and num_intents > 1:
            # Start every sigmoid near 1/n: most intents are absent from most texts, and a zero bias
            # (p = 0.5 everywhere) spends the first epoch unlearning that.
            nn.init.constant_(self.intent_head.bias, -float(torch.log(torch.tensor(num_intents - 1.0))))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(intent logits: batch x intents, tag logits: batch x tokens x tags)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return self.intent_head(self.dropout(pooled)), self.tag_head(self.dropout(hidden))

    def freeze_word_embeddings(self) -> None:
        """Stop training the input word embeddings (see ``JointConfig.freeze_embeddings``)."""
        embeddings = self.encoder.get_input_embeddings()
        if embeddings is not None:
            embeddings.weight.requires_grad_(False)

    def parameter_groups(self, lr: float, head_lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW groups: encoder at ``lr``, heads at ``head_lr``; no decay on biases and LayerNorms."""
        groups: list[dict[str, Any]] = []
        for module, rate in ((self.encoder, lr), (nn.ModuleList([self.intent_head, self.tag_head]), head_lr)):
            decay, no_decay = [], []
            for name, param in module.named_parameters():
                if param.requires_grad:
                    (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
            groups.append({"params": decay, "lr": rate, "weight_decay": weight_decay})
            groups.append({"params": no_decay, "lr": rate, "weight_decay": 0.0})
        return groups
