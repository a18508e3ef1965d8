"""Fine-tuning the joint model on a project's examples, then calibrating it on a held-out split.

Out-of-scope examples (``out_of_scope_texts``, examples without intents, and synthesised keyboard mash)
are trained as *negatives*. Sigmoid (multi-label) heads learn an all-zero target for them. Softmax heads
get one extra class, last, that negatives are labelled with; its probability is dropped from the intent
ranking, so an out-of-scope text leaves every intent with a low probability (a uniform target over the
intents, "outlier exposure", was tried first: it learned far more slowly on small projects). Either way
"out of scope" is then a threshold on the top intent probability, chosen on the validation split when
that holds out-of-scope examples.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from tokenizers import Encoding, Tokenizer
from tqdm.auto import tqdm

from parley.core.errors import ConfigurationError, InvalidInputError
from parley.core.logging import get_logger
from parley.nlu.model import codec
from parley.nlu.model.config import JointConfig
from parley.nlu.model.data import (
    Example,
    ExampleLike,
    data_hash,
    keyboard_mash,
    multi_intent_examples,
    normalise,
    stratified_split,
)
from parley.nlu.model.joint import JointModel, load_encoder

log = get_logger(__name__)

ECE_BINS = 15
#: Candidate temperatures for calibration (log-spaced 0.25 .. 8).
TEMPERATURES = np.exp(np.linspace(math.log(0.25), math.log(8.0), 101))


@dataclass
class TrainedJoint:
    """A trained model in memory with everything needed to predict, export and save it."""

    model: JointModel
    tokenizer: Tokenizer
    config: JointConfig
    intents: tuple[str, ...]
    tags: tuple[str, ...]
    temperature: float
    oos_threshold: float
    data_hash: str
    metrics: dict[str, float]
    #: Texts to compare an exported (e.g. int8) model against this one: validation and training texts.
    reference_texts: tuple[str, ...] = ()
    encoder_path: Path = field(default_factory=Path)

    @property
    def multi_label(self) -> bool:
        return bool(self.config.multi_label)

    def logits(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]], list[Encoding]]:
        """Raw (intent logits, tag logits) and encoding of each text, in input order (eager torch)."""
        return _forward(self.model, self.tokenizer, texts, batch_size, self.config)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[codec.Prediction]:
        """Predictions with the torch model (the reference the ONNX runtime is checked against)."""
        intent_rows, tag_rows, encodings = self.logits(texts, batch_size)
        out: list[codec.Prediction] = []
        for intent_logits, tag_logits, encoding in zip(intent_rows, tag_rows, encodings, strict=True):
            out += codec.predictions(
                intent_logits[None],
                tag_logits[None],
                [encoding],
                intents=self.intents,
                tags=self.tags,
                temperature=self.temperature,
                multi_label=self.multi_label,
                oos_threshold=self.oos_threshold,
            )
        return out


@dataclass(frozen=True)
class _Row:
    ids: list[int]
    tags: list[int]
    target: npt.NDArray[np.float32]
    negative: bool


def _forward(
    model: JointModel, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int, config: JointConfig
) -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]], list[Encoding]]:
    device = next(model.parameters()).device
    intents: list[Any] = [None] * len(texts)
    tags: list[Any] = [None] * len(texts)
    encodings: list[Any] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(config, device):
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                ids, mask, encs = codec.encode(tokenizer, [texts[i] for i in chunk])
                intent_logits, tag_logits = model(
                    torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
                )
                intent_np = intent_logits.float().cpu().numpy()
                tag_np = tag_logits.float().cpu().numpy()
                for j, i in enumerate(chunk):
                    intents[i], encodings[i] = intent_np[j], encs[j]
                    tags[i] = tag_np[j]
    finally:
        model.train(was_training)
    return intents, tags, encodings


def _autocast(config: JointConfig, device: torch.device) -> Any:
    if device.type == "cuda" and config.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return torch.autocast(device_type="cpu", enabled=False)


def expected_calibration_error(confidence: npt.NDArray[np.float64], correct: npt.NDArray[np.bool_]) -> float:
    """Top-label ECE with equal-width bins: the mean |accuracy - confidence| weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in range(ECE_BINS):
        in_bin = bins == b
        if in_bin.any():
            total += in_bin.sum() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total / len(confidence))


def _nll(logits: npt.NDArray[np.float32], targets: npt.NDArray[np.float32], t: float, multi: bool) -> float:
    scaled = logits / t
    if multi:
        # BCE with logits, stable: max(x,0) - x*y + log(1 + exp(-|x|))
        loss = np.maximum(scaled, 0) - scaled * targets + np.log1p(np.exp(-np.abs(scaled)))
        return float(loss.sum(axis=1).mean())
    log_probs = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = log_probs - np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    return float(-(targets * log_probs).sum(axis=1).mean())


def _calibrate(
    logits: npt.NDArray[np.float32],
    targets: npt.NDArray[np.float32],
    negative: npt.NDArray[np.bool_],
    multi: bool,
    min_examples: int,
) -> tuple[float, dict[str, float]]:
    """The temperature minimising validation NLL, kept only if it does not worsen the validation ECE.

    Softmax NLL is taken over in-scope examples (negatives have no correct class); sigmoid NLL over all.
    The NLL targets are smoothed by 1/(n+2) (Laplace's rule: after n right answers, expect the next to be
    right with (n+1)/(n+2)), so a small, perfectly separated split does not drive the temperature to its
    bound. ECE is top-label ECE over in-scope examples (correct: the top intent is a gold intent).
    """
    in_scope = ~negative
    fit_rows = np.ones(len(logits), dtype=bool) if multi else in_scope
    if in_scope.sum() < max(1, min_examples):
        return 1.0, {}
    fit_logits, fit_targets = logits[fit_rows], targets[fit_rows]
    eps = 1.0 / (len(fit_logits) + 2)
    if multi:
        smoothed = fit_targets * (1 - eps) + (1 - fit_targets) * eps
    else:
        smoothed = fit_targets * (1 - eps) + eps / fit_targets.shape[1]
    nll = [_nll(fit_logits, smoothed, float(t), multi) for t in TEMPERATURES]
    best = float(TEMPERATURES[int(np.argmin(nll))])

    def ece(t: float) -> tuple[float, float]:
        probs = codec.intent_probabilities(logits[in_scope], t, multi)
        top = probs.argmax(axis=1)
        correct = targets[in_scope][np.arange(len(top)), top] > 0
        return expected_calibration_error(probs.max(axis=1).astype(np.float64), correct), float(
            correct.mean()
        )

    before, accuracy = ece(1.0)
    after, _ = ece(best)
    temperature = best if after <= before else 1.0
    return temperature, {
        "validation_accuracy": accuracy,
        "validation_ece_before": before,
        "validation_ece_after": min(after, before),
        "validation_nll_before": _nll(fit_logits, fit_targets, 1.0, multi),
        "validation_nll_after": _nll(fit_logits, fit_targets, temperature, multi),
    }


def choose_oos_threshold(
    top_probs: npt.NDArray[np.float64],
    accepted_correct: npt.NDArray[np.bool_],
    negative: npt.NDArray[np.bool_],
    min_recall: float | None = None,
) -> tuple[float, float] | None:
    """The threshold on the top probability maximising balanced accuracy, with that accuracy.

    In scope counts as right when the top intent is correct and at least the threshold; out of scope when
    below it. Among equally good thresholds the middle one is taken. ``None`` without both kinds of data.

    With ``min_recall`` the threshold is instead the lowest one that still rejects that share of the
    out-of-scope examples: in-scope accuracy only falls as the threshold rises, so this is the most
    in-scope accuracy the wanted recall allows (CLINC150's way of scoring). Unreachable → balanced.
    """
    if not negative.any() or negative.all():
        return None
    scores = np.unique(top_probs)
    candidates = np.concatenate([[scores[0] / 2], (scores[:-1] + scores[1:]) / 2, [(scores[-1] + 1) / 2]])
    if min_recall is not None:
        recall = np.array([(top_probs[negative] < t).mean() for t in candidates])
        reaching = np.flatnonzero(recall >= min_recall - 1e-12)
        if len(reaching) and reaching[0] < len(candidates) - 1:
            t = candidates[reaching[0]]
            in_scope = (accepted_correct[~negative] & (top_probs[~negative] >= t)).mean()
            return float(np.clip(t, 0.01, 0.99)), float(0.5 * in_scope + 0.5 * recall[reaching[0]])
    quality = np.array(
        [
            0.5 * (accepted_correct[~negative] & (top_probs[~negative] >= t)).mean()
            + 0.5 * (top_probs[negative] < t).mean()
            for t in candidates
        ]
    )
    best = np.flatnonzero(quality >= quality.max() - 1e-12)
    chosen = candidates[best[len(best) // 2]]
    return float(np.clip(chosen, 0.01, 0.99)), float(quality.max())


def _rows(
    examples: Sequence[Example],
    tokenizer: Tokenizer,
    intents: dict[str, int],
    tags: dict[str, int],
    multi: bool,
) -> list[_Row]:
    unpadded = Tokenizer.from_str(tokenizer.to_str())
    unpadded.no_padding()
    encodings = unpadded.encode_batch([e.text for e in examples])
    rows = []
    for example, encoding in zip(examples, encodings, strict=True):
        target = np.zeros(len(intents) + (0 if multi else 1), dtype=np.float32)
        negative = not example.intents
        if negative:
            if not multi:
                target[-1] = 1.0  # the out-of-scope class of softmax heads
        else:
            for name in example.intents:
                target[intents[name]] = 1.0
            if not multi:
                target /= target.sum()
        rows.append(_Row(encoding.ids, codec.bio_targets(encoding, example.entities, tags), target, negative))
    return rows


def _batch(rows: Sequence[_Row], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    tags = torch.full((len(rows), width), codec.IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row.ids)] = torch.tensor(row.ids)
        mask[i, : len(row.ids)] = 1
        tags[i, : len(row.tags)] = torch.tensor(row.tags)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "tags": tags.to(device),
        "target": torch.from_numpy(np.stack([r.target for r in rows])).to(device),
        "negative": torch.tensor([r.negative for r in rows], device=device),
    }


def _loss(
    intent_logits: torch.Tensor, tag_logits: torch.Tensor, batch: dict[str, torch.Tensor], config: JointConfig
) -> torch.Tensor:
    intent_logits = intent_logits.float()
    target = batch["target"]
    if config.multi_label:
        per_row = F.binary_cross_entropy_with_logits(intent_logits, target, reduction="none").sum(dim=1)
    else:
        per_row = -(target * F.log_softmax(intent_logits, dim=1)).sum(dim=1)
    weights = torch.where(batch["negative"], config.oos_loss_weight, 1.0)
    loss = (per_row * weights).sum() / weights.sum().clamp(min=1e-9)
    if tag_logits.shape[-1] > 1 and (batch["tags"] != codec.IGNORE).any():
        tag_loss = F.cross_entropy(
            tag_logits.float().reshape(-1, tag_logits.shape[-1]),
            batch["tags"].reshape(-1),
            ignore_index=codec.IGNORE,
        )
        loss = loss + config.tag_loss_weight * tag_loss
    return loss


def _resolve(config: JointConfig, examples: Sequence[Example]) -> JointConfig:
    multi = (
        config.multi_label if config.multi_label is not None else any(len(e.intents) > 1 for e in examples)
    )
    augment = config.augment_multi_intent if config.augment_multi_intent is not None else multi
    return config.replace(multi_label=multi, augment_multi_intent=augment)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # libraries below may draw from numpy's global generator
    torch.manual_seed(seed)


@dataclass(frozen=True)
class _Data:
    """The examples split and extended: what the model trains and is calibrated on."""

    config: JointConfig
    intents: tuple[str, ...]
    tags: tuple[str, ...]
    given: list[Example]
    train: list[Example]
    synthetic: list[Example]
    negatives: list[Example]
    validation: list[Example]

    @property
    def training_set(self) -> list[Example]:
        return self.train + self.synthetic + self.negatives


def _prepare(
    examples: Iterable[ExampleLike],
    config: JointConfig,
    out_of_scope_texts: Sequence[str],
    validation_examples: Iterable[ExampleLike] | None,
) -> _Data:
    given = normalise(examples)
    given += [Example(text) for text in out_of_scope_texts if text.strip()]
    in_scope = [e for e in given if e.intents]
    intents = tuple(sorted({name for e in in_scope for name in e.intents}))
    if len(intents) < 2:
        raise InvalidInputError("the joint model needs examples of at least two intents")
    config = _resolve(config, in_scope)
    rng = random.Random(config.seed)
    if validation_examples is not None:
        train, validation = given, normalise(validation_examples)
        unknown = {n for e in validation for n in e.intents} - set(intents)
        if unknown:
            raise InvalidInputError(f"validation examples have intents not in training: {sorted(unknown)}")
    else:
        train, validation = stratified_split(
            given, config.validation_fraction, config.min_examples_to_split, rng
        )
    synthetic: list[Example] = []
    if config.augment_multi_intent:
        train_in_scope = [e for e in train if e.intents]
        synthetic = multi_intent_examples(
            train_in_scope, round(config.augment_ratio * len(train_in_scope)), rng
        )
        if config.multi_label and validation:
            val_in_scope = [e for e in validation if e.intents]
            validation += multi_intent_examples(
                val_in_scope, round(config.augment_ratio * len(val_in_scope)), rng
            )
    noise = 0
    if config.noise_negatives > 0:
        noise = max(config.min_noise_negatives, math.ceil(config.noise_negatives * len(train)))
    return _Data(
        config=config,
        intents=intents,
        tags=codec.bio_tags([s.type for e in given for s in e.entities]),
        given=given,
        train=train,
        synthetic=synthetic,
        negatives=[Example(text) for text in keyboard_mash(noise, rng)],
        validation=validation,
    )


def _optimizer(model: JointModel, config: JointConfig) -> torch.optim.Optimizer:
    groups = model.parameter_groups(config.lr, config.head_lr, config.weight_decay)
    try:  # the fused kernel is several times faster on CPU and GPU where this torch has it
        return torch.optim.AdamW(groups, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups)


def _fit(
    model: JointModel, rows: list[_Row], pad_id: int, config: JointConfig, progress: bool
) -> list[float]:
    """The training loop: AdamW, linear warmup then decay, clipped gradients; mean loss per epoch."""
    device = next(model.parameters()).device
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_ratio * total_steps)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    use_amp = device.type == "cuda" and config.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    model.train()
    epochs = tqdm(range(config.epochs), desc="nlu joint training", unit="epoch", disable=not progress)
    for _ in epochs:
        order = torch.randperm(len(rows), generator=generator).tolist()
        batches = tqdm(
            range(steps_per_epoch), desc="batches", unit="batch", leave=False, disable=not progress
        )
        total = 0.0
        for step in batches:
            chunk = order[step * config.batch_size : (step + 1) * config.batch_size]
            batch = _batch([rows[i] for i in chunk], pad_id, device)
            with _autocast(config, device):
                intent_logits, tag_logits = model(batch["input_ids"], batch["attention_mask"])
            loss = _loss(intent_logits, tag_logits, batch, config)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            value = float(loss.detach())
            total += value
            batches.set_postfix(loss=f"{value:.4f}")
        losses.append(total / steps_per_epoch)
        epochs.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


def _evaluate(
    model: JointModel,
    tokenizer: Tokenizer,
    data: _Data,
    intent_index: dict[str, int],
    tag_index: dict[str, int],
) -> tuple[float, float, dict[str, float]]:
    """(temperature, out-of-scope threshold, metrics) from the validation split."""
    config = data.config
    multi = bool(config.multi_label)
    if not data.validation:
        return 1.0, config.oos_threshold, {}
    logits = np.stack(_forward(model, tokenizer, [e.text for e in data.validation], 64, config)[0])
    rows = _rows(data.validation, tokenizer, intent_index, tag_index, multi)
    targets = np.stack([r.target for r in rows])
    negative = np.array([r.negative for r in rows])
    temperature, metrics = _calibrate(logits, targets, negative, multi, config.min_calibration_examples)
    probs = codec.intent_probabilities(logits, temperature, multi)
    top = probs.argmax(axis=1)
    correct = (targets[np.arange(len(top)), top] > 0) & ~negative
    if (~negative).any():
        metrics.setdefault("validation_accuracy", float(correct[~negative].mean()))
    threshold = config.oos_threshold
    chosen = choose_oos_threshold(
        probs.max(axis=1).astype(np.float64), correct, negative, config.oos_min_recall
    )
    if chosen is not None:
        threshold, metrics["validation_oos_balanced_accuracy"] = chosen
    return temperature, threshold, metrics


def train_joint(
    examples: Iterable[ExampleLike],
    config: JointConfig | None = None,
    progress: bool = True,
    *,
    out_of_scope_texts: Sequence[str] = (),
    validation_examples: Iterable[ExampleLike] | None = None,
) -> TrainedJoint:
    """Fine-tune encoder and heads on ``examples``; calibrate and pick the out-of-scope threshold.

    ``validation_examples`` replaces the stratified split of ``config.validation_fraction``. Examples
    without intents are out-of-scope negatives, like ``out_of_scope_texts``. ``config.num_threads``
    applies to this call only (torch's thread count is restored after).
    """
    started = time.perf_counter()
    data = _prepare(examples, config or JointConfig(), out_of_scope_texts, validation_examples)
    config = data.config
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigurationError("the joint model config asks for cuda, but torch sees no CUDA device")
    intent_index = {name: i for i, name in enumerate(data.intents)}
    tag_index = {name: i for i, name in enumerate(data.tags)}
    threads = torch.get_num_threads()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    try:
        encoder, tokenizer = load_encoder(config)
        _seed(config.seed)  # the heads' initialisation and dropout do not depend on what loading drew
        model = JointModel(
            encoder,
            len(data.intents) + (0 if config.multi_label else 1),
            len(data.tags),
            config.dropout,
            bool(config.multi_label),
        )
        model = model.to(device)
        if config.freeze_embeddings:
            model.freeze_word_embeddings()
        rows = _rows(data.training_set, tokenizer, intent_index, tag_index, bool(config.multi_label))
        pad_id = int(tokenizer.padding["pad_id"]) if tokenizer.padding else 0
        losses = _fit(model, rows, pad_id, config, progress)
        temperature, threshold, validation_metrics = _evaluate(
            model, tokenizer, data, intent_index, tag_index
        )
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - started
    metrics: dict[str, float] = {
        "examples": float(len(data.given)),
        "train_examples": float(len(data.train)),
        "synthetic_multi_intent": float(len(data.synthetic)),
        "noise_negatives": float(len(data.negatives)),
        "validation_examples": float(len(data.validation)),
        "final_loss": losses[-1],
        **validation_metrics,
        "temperature": temperature,
        "oos_threshold": threshold,
        "train_seconds": round(seconds, 3),
    }
    reference = [e.text for e in data.validation] + [e.text for e in data.train[:300]]
    reference += [e.text for e in data.negatives[:20]]
    log.info(
        "nlu joint model trained",
        examples=len(data.given),
        intents=len(data.intents),
        tags=len(data.tags),
        multi_label=config.multi_label,
        train_s=round(seconds, 2),
        temperature=round(temperature, 3),
        oos_threshold=round(threshold, 3),
        device=config.device,
    )
    return TrainedJoint(
        model=model,
        tokenizer=tokenizer,
        config=config,
        intents=data.intents,
        tags=data.tags,
        temperature=temperature,
        oos_threshold=threshold,
        data_hash=data_hash(data.given, ()),
        metrics=metrics,
        reference_texts=tuple(dict.fromkeys(reference)),
        encoder_path=config.resolved_encoder_path(),
    )
