"""Labelled examples to evaluate on, their BIO tags, and reading them from an ``nlu.yml``-shaped file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from parley.core.errors import InvalidInputError
from parley.core.project import NluFile, Project, load_nlu_text
from parley.nlu.domain.training_data import training_examples

OUTSIDE = "O"
#: Gold label of a project's ``out_of_scope`` examples in evaluation results.
OUT_OF_SCOPE = "out_of_scope"
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True, order=True)
class Span:
    """An entity's character span, ``end`` exclusive, as in ``nlu_pb2.Entity``."""

    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Example:
    """One gold utterance: its intents (several for multi-intent data, none for slot-only replies)."""

    text: str
    intents: tuple[str, ...]
    entities: tuple[Span, ...] = ()


def tokens(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated tokens of ``text``."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def bio_tags(text: str, spans: Iterable[Span]) -> list[str]:
    """BIO tags over the whitespace tokens of ``text``: a token is in a span when they overlap.

    Spans are placed longest first and never overwrite tagged tokens, so overlapping predictions (two
    extractors finding the same number) yield one entity rather than a broken sequence.
    """
    toks = tokens(text)
    tags = [OUTSIDE] * len(toks)
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start, s.type)):
        covered = [i for i, (start, end) in enumerate(toks) if start < span.end and span.start < end]
        if not covered or any(tags[i] != OUTSIDE for i in covered):
            continue
        tags[covered[0]] = f"B-{span.type}"
        for i in covered[1:]:
            tags[i] = f"I-{span.type}"
    return tags


def spans_from_tags(token_spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> tuple[Span, ...]:
    """The entity spans that BIO ``tags`` mark over tokens at ``token_spans`` (character offsets).

    An ``I-`` tag that does not continue an entity of its type starts one, as conlleval reads it.
    """
    if len(token_spans) != len(tags):
        raise ValueError(f"{len(token_spans)} tokens but {len(tags)} tags")
    spans: list[Span] = []
    start = end = 0
    current: str | None = None
    for (t_start, t_end), tag in zip(token_spans, tags, strict=True):
        kind, _, etype = tag.partition("-")
        if kind == "I" and current == etype:
            end = t_end
            continue
        if current is not None:
            spans.append(Span(start, end, current))
            current = None
        if kind in {"B", "I"} and etype:
            current, start, end = etype, t_start, t_end
    if current is not None:
        spans.append(Span(start, end, current))
    return tuple(spans)


def spans_from_bio(words: Sequence[str], tags: Sequence[str]) -> tuple[str, tuple[Span, ...]]:
    """The text (``words`` joined by single spaces) and the entity spans the BIO ``tags`` mark."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in words:
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans_from_tags(offsets, tags)


def examples_from_nlu(source: Project | NluFile) -> list[Example]:
    """Every example of a project's NLU data, annotations turned into gold spans, in file order.

    Multi-intent examples keep all their intents (the one they are listed under first); the
    ``out_of_scope`` examples come last with no intents.
    """
    return [
        Example(t.text, t.intents, tuple(Span(e.start, e.end, e.type) for e in t.entities))
        for t in training_examples(source, include_out_of_scope=True)
    ]


def load_examples(path: Path) -> list[Example]:
    """The examples of a held-out test file in the ``nlu.yml`` format (see :func:`examples_from_nlu`).

    Raises :class:`~parley.core.project.ProjectError` with ``file:line`` problems when it is invalid, and
    :class:`InvalidInputError` when it cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the test file: {exc}") from exc
    return examples_from_nlu(load_nlu_text(text, source=path))
