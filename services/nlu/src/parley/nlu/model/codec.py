"""Texts to model inputs and model outputs to predictions, shared by training and serving.

Both sides tokenise with the same ``tokenizers.Tokenizer`` (saved as ``tokenizer.json`` with its
truncation and padding settings), so the word pieces, their character offsets and the BIO alignment are
identical in training, in the torch model and in the ONNX runtime. numpy and tokenizers only: this module
is on the serving path, where torch and transformers are not imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from tokenizers import Encoding, Tokenizer

from parley.nlu.model.data import SpanLike

OUTSIDE = "O"
IGNORE = -100


class TagSpan(NamedTuple):
    """An entity found by the tagger: characters ``[start, end)`` of the original text are a ``type``."""

    start: int
    end: int
    type: str
    score: float


@dataclass(frozen=True)
class Prediction:
    """One text's intents (every intent, most probable first) and tagged entity spans.

    Probabilities are calibrated (temperature-scaled). With softmax heads they sum to one minus the
    probability that the text is out of scope; with sigmoid (multi-label) heads each is the independent
    probability that the text expresses that intent.
    ``out_of_scope`` is set when even the top intent is below the model's out-of-scope threshold.
    """

    intent_probs: dict[str, float]
    tags: list[TagSpan] = field(default_factory=list)
    out_of_scope: bool = False

    @property
    def intent(self) -> str | None:
        """The top intent, or ``None`` when the text is out of scope."""
        if self.out_of_scope or not self.intent_probs:
            return None
        return next(iter(self.intent_probs))


def bio_tags(entity_types: Sequence[str]) -> tuple[str, ...]:
    """``O`` then ``B-x``, ``I-x`` for each entity type, in a stable order."""
    tags = [OUTSIDE]
    for name in sorted(set(entity_types)):
        tags += [f"B-{name}", f"I-{name}"]
    return tuple(tags)


def configure(tokenizer: Tokenizer, max_len: int, pad_id: int, pad_token: str) -> Tokenizer:
    """A copy of ``tokenizer`` that truncates to ``max_len`` pieces and pads a batch to its longest."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.enable_truncation(max_length=max_len)
    copy.enable_padding(pad_id=pad_id, pad_token=pad_token)
    return copy


def encode(
    tokenizer: Tokenizer, texts: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Encoding]]:
    """(input ids, attention mask, encodings) of ``texts``, padded to the longest."""
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
    return ids, mask, encodings


def _words(encoding: Encoding) -> list[tuple[int, int, int, int]]:
    """(first token, last token, char start, char end) of each word of ``encoding``, in order."""
    words: list[tuple[int, int, int, int]] = []
    previous: int | None = None
    for index, (word, (start, end)) in enumerate(zip(encoding.word_ids, encoding.offsets, strict=True)):
        if word is None:
            previous = None
            continue
        if word == previous and words:
            first, _, w_start, _ = words[-1]
            words[-1] = (first, index, w_start, end)
        else:
            words.append((index, index, start, end))
        previous = word
    return words


def bio_targets(encoding: Encoding, spans: Sequence[SpanLike], tag_index: dict[str, int]) -> list[int]:
    """The BIO label of each token: on a word's first piece, ``IGNORE`` on the rest and on specials.

    A word is tagged with the entity it overlaps; ``B-`` on the first word of an entity, ``I-`` after.
    """
    labels = [IGNORE] * len(encoding.ids)
    seen: set[int] = set()
    for first, _, start, end in _words(encoding):
        tag = OUTSIDE
        for number, span in enumerate(spans):
            if start < span.end and end > span.start:
                tag = ("I-" if number in seen else "B-") + span.type
                seen.add(number)
                break
        labels[first] = tag_index.get(tag, tag_index[OUTSIDE])
    return labels


def softmax(x: npt.NDArray[np.float32], axis: int = -1) -> npt.NDArray[np.float32]:
    shifted = x - x.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


def intent_probabilities(
    logits: npt.NDArray[np.float32], temperature: float, multi_label: bool
) -> npt.NDArray[np.float32]:
    """Calibrated probabilities of the intents (batch x intents) from the head's logits.

    Sigmoid heads have one logit per intent. Softmax heads have one more, last: the out-of-scope class,
    whose probability is left out, so a softmax row sums to 1 - P(out of scope).
    """
    scaled = logits.astype(np.float32) / np.float32(temperature)
    return sigmoid(scaled) if multi_label else softmax(scaled)[:, :-1]


def decode_tags(encoding: Encoding, tag_probs: npt.NDArray[np.float32], tags: Sequence[str]) -> list[TagSpan]:
    """Entity spans from per-token tag probabilities (tokens x tags), read on each word's first piece.

    ``I-x`` without a preceding ``x`` starts a new span (lenient BIO); a span's score is the mean
    probability of its words' tags.
    """
    spans: list[TagSpan] = []
    current: tuple[int, int, str, list[float]] | None = None
    for first, _, start, end in _words(encoding):
        if first >= tag_probs.shape[0]:
            break
        best = int(tag_probs[first].argmax())
        tag, prob = tags[best], float(tag_probs[first, best])
        kind = tag[2:]
        if tag != OUTSIDE and tag.startswith("I-") and current is not None and current[2] == kind:
            current = (current[0], end, kind, [*current[3], prob])
            continue
        if current is not None:
            spans.append(TagSpan(current[0], current[1], current[2], sum(current[3]) / len(current[3])))
            current = None
        if tag != OUTSIDE:
            current = (start, end, kind, [prob])
    if current is not None:
        spans.append(TagSpan(current[0], current[1], current[2], sum(current[3]) / len(current[3])))
    return spans


def predictions(
    intent_logits: npt.NDArray[np.float32],
    tag_logits: npt.NDArray[np.float32],
    encodings: Sequence[Encoding],
    *,
    intents: Sequence[str],
    tags: Sequence[str],
    temperature: float,
    multi_label: bool,
    oos_threshold: float,
) -> list[Prediction]:
    """One :class:`Prediction` per encoding from the raw outputs of the model."""
    probs = intent_probabilities(intent_logits, temperature, multi_label)
    tag_probs = softmax(tag_logits.astype(np.float32)) if len(tags) > 1 else None
    out = []
    for row, encoding in enumerate(encodings):
        order = np.argsort(-probs[row], kind="stable")
        ranked = {intents[i]: float(probs[row, i]) for i in order}
        top = float(probs[row, order[0]]) if len(order) else 0.0
        spans = decode_tags(encoding, tag_probs[row], tags) if tag_probs is not None else []
        out.append(Prediction(intent_probs=ranked, tags=spans, out_of_scope=top < oos_threshold))
    return out
