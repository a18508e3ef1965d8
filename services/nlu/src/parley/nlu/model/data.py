"""The shape of training examples the joint model learns from, and the data it synthesises from them.

Examples are duck-typed (:class:`ExampleLike`): the project's ``TrainingExample`` fits, and so does the
small :class:`Example` here that tests and benchmarks build directly. Pure Python, no torch.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from parley.core.errors import InvalidInputError


class SpanLike(Protocol):
    """An entity annotation: characters ``[start, end)`` of the example's text are a ``type``."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def type(self) -> str: ...


class ExampleLike(Protocol):
    """One training utterance with its intents (none: an out-of-scope example) and entity spans."""

    @property
    def text(self) -> str: ...
    @property
    def intents(self) -> tuple[str, ...]: ...
    @property
    def entities(self) -> Sequence[SpanLike]: ...


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Example:
    text: str
    intents: tuple[str, ...] = ()
    entities: tuple[Span, ...] = ()


#: Joiners of synthesised two-intent messages ("cancel my order and also update my address").
CONNECTORS = (" and also ", " and ", ", also ", ". Also ", " and then ", ", and ", " plus ")


def normalise(examples: Iterable[ExampleLike]) -> list[Example]:
    """Plain :class:`Example` copies, checked: spans inside the text, non-empty text."""
    out: list[Example] = []
    for i, ex in enumerate(examples):
        text = str(ex.text)
        if not text.strip():
            raise InvalidInputError(f"training example {i} has an empty text")
        spans: list[Span] = []
        for span in ex.entities:
            if not 0 <= span.start < span.end <= len(text):
                raise InvalidInputError(
                    f"training example {i} ({text!r}): entity span {span.start}:{span.end} lies outside it"
                )
            spans.append(Span(int(span.start), int(span.end), str(span.type)))
        out.append(Example(text, tuple(dict.fromkeys(str(x) for x in ex.intents)), tuple(spans)))
    return out


def data_hash(examples: Sequence[Example], out_of_scope: Sequence[str]) -> str:
    """A stable hash of the training data (order-insensitive), to find a model trained on the same data."""
    rows = sorted(
        json.dumps([e.text, sorted(e.intents), sorted((s.start, s.end, s.type) for s in e.entities)])
        for e in examples
    )
    rows += sorted(json.dumps(["oos", t]) for t in out_of_scope)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def concatenate(first: Example, second: Example, connector: str) -> Example:
    """``first`` + ``connector`` + ``second`` with both intent sets and the second's spans shifted."""
    left = first.text.rstrip(" .!?")
    right = second.text
    text = left + connector + right
    shift = len(left) + len(connector)
    spans = tuple(s for s in first.entities if s.end <= len(left))
    spans += tuple(Span(s.start + shift, s.end + shift, s.type) for s in second.entities)
    intents = tuple(dict.fromkeys(first.intents + second.intents))
    return Example(text, intents, spans)


def multi_intent_examples(examples: Sequence[Example], count: int, rng: random.Random) -> list[Example]:
    """``count`` two-intent messages, each joining examples of two different intents."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        if len(ex.intents) == 1:
            by_intent[ex.intents[0]].append(ex)
    names = sorted(by_intent)
    if len(names) < 2 or count <= 0:
        return []
    out = []
    for _ in range(count):
        a, b = rng.sample(names, 2)
        out.append(concatenate(rng.choice(by_intent[a]), rng.choice(by_intent[b]), rng.choice(CONNECTORS)))
    return out


_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def keyboard_mash(count: int, rng: random.Random) -> list[str]:
    """Gibberish such as users type to test a bot ("askdjfkajsdf", "jjjjj", "sdf lkj qwe").

    A cheap source of out-of-scope negatives: without any, a softmax (and often a sigmoid) head is
    confidently wrong on strings unlike anything it saw.
    """
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # home-row and neighbouring-key runs
            row = _ROWS[rng.randrange(3)] + _ROWS[1]
            text = "".join(rng.choice(row) for _ in range(rng.randint(5, 16)))
        elif kind == 1:  # random letters
            text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(3, 14)))
        elif kind == 2:  # several short nonsense "words"
            words = ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(2, 7))) for _ in range(3)]
            text = " ".join(words[: rng.randint(2, 3)])
        else:  # repeated characters or syllables
            unit = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 3)))
            text = unit * rng.randint(3, 6)
        out.append(text)
    return out


def stratified_split(
    examples: Sequence[Example], fraction: float, min_examples: int, rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """(train, validation): ``fraction`` of each intent's examples (by first intent) held out.

    Intents with fewer than ``min_examples`` examples keep them all for training, so tiny projects lose
    nothing they need to learn from.
    """
    if fraction <= 0:
        return list(examples), []
    groups: dict[tuple[str, ...], list[Example]] = defaultdict(list)
    for ex in examples:
        groups[tuple(sorted(ex.intents))].append(ex)
    train: list[Example] = []
    validation: list[Example] = []
    for key in sorted(groups):
        group = groups[key][:]
        rng.shuffle(group)
        held = round(len(group) * fraction) if len(group) >= min_examples else 0
        validation.extend(group[:held])
        train.extend(group[held:])
    return train, validation
