"""Loaders for the public NLU benchmarks in ``../shared/datasets`` (read in place, never copied).

Every loader returns a :class:`Dataset` of :class:`~parley.nlu.evaluation.examples.Example`; the folder is
``$PARLEY_DATASETS_DIR`` or ``<repo>/../shared/datasets``. Splits:

- CLINC150 (``data/data_full.json``): train 15,000 / val 3,000 / test 4,500 in-scope plus 100 / 100 /
  1,000 out-of-scope examples, labelled ``oos`` (the data set's own label).
- BANKING77: the official train (10,003) and test (3,080); no official validation split, so 10% of each
  intent's training examples (rounded per intent, seeded) are held out as validation: train 9,000 / val
  1,003 / test 3,080.
- SNIPS (Goo et al. 2018 split): train 13,084 / val 700 / test 700; slot BIO tags become character spans
  over the space-joined tokens.
- NLU++ (banking, hotels): the README's "large" setup, 18 folds to train on and 2 to test on, taking its
  first pair: test = folds 0 and 1, train = folds 2-19; no validation split (the paper has none).
  Banking: train 1,862 / test 209; hotels: train 914 / test 95. Multi-label intents, slots as spans.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from parley.nlu.evaluation.examples import Example, Span, spans_from_bio

CLINC_OOS = "oos"
NLUPP_FOLDS = 20
NLUPP_TEST_FOLDS = (0, 1)
BANKING_VAL_SHARE = 0.1
SEED = 13


class DatasetMissingError(FileNotFoundError):
    """The shared datasets folder (or a file in it) is not there."""


@dataclass(frozen=True)
class Dataset:
    """A benchmark: its splits and, where it has one, the label of out-of-scope examples."""

    name: str
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]
    oos_label: str | None = None

    @property
    def intents(self) -> tuple[str, ...]:
        """Every in-scope intent of the training split, sorted."""
        return tuple(sorted({i for e in self.train for i in e.intents} - {self.oos_label}))

    @property
    def multi_label(self) -> bool:
        """Whether some example has several intents."""
        return any(len(e.intents) > 1 for e in (*self.train, *self.test))

    @property
    def has_slots(self) -> bool:
        """Whether the test split has gold entity spans."""
        return any(e.entities for e in self.test)


def datasets_dir() -> Path:
    """``$PARLEY_DATASETS_DIR``, else ``../shared/datasets`` beside the repository."""
    env = os.environ.get("PARLEY_DATASETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _folder(root: Path | None, name: str) -> Path:
    folder = (root or datasets_dir()) / name
    if not folder.is_dir():
        raise DatasetMissingError(f"{folder}: dataset folder not found (set PARLEY_DATASETS_DIR)")
    return folder


def load_clinc150(root: Path | None = None) -> Dataset:
    """CLINC150 "full": 150 intents plus out-of-scope examples in every split."""
    path = _folder(root, "clinc150") / "data" / "data_full.json"
    data = json.loads(path.read_text(encoding="utf-8"))

    def split(name: str) -> tuple[Example, ...]:
        rows = [*data[name], *data[f"oos_{name}"]]
        return tuple(Example(text=text, intents=(intent,)) for text, intent in rows)

    return Dataset("clinc150", split("train"), split("val"), split("test"), oos_label=CLINC_OOS)


def _stratified_holdout(
    examples: Sequence[Example], share: float, seed: int
) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, example in enumerate(examples):
        by_intent[example.intents[0]].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for intent in sorted(by_intent):
        indexes = by_intent[intent]
        rng.shuffle(indexes)
        held.update(indexes[: round(len(indexes) * share)])
    keep = tuple(e for i, e in enumerate(examples) if i not in held)
    return keep, tuple(e for i, e in enumerate(examples) if i in held)


def load_banking77(
    root: Path | None = None, val_share: float = BANKING_VAL_SHARE, seed: int = SEED
) -> Dataset:
    """BANKING77: official train/test; validation = ``val_share`` of each intent's training examples."""
    folder = _folder(root, "banking77") / "banking_data"

    def read(name: str) -> tuple[Example, ...]:
        with (folder / name).open(encoding="utf-8", newline="") as handle:
            return tuple(
                Example(text=row["text"], intents=(row["category"],)) for row in csv.DictReader(handle)
            )

    train, val = _stratified_holdout(read("train.csv"), val_share, seed)
    return Dataset("banking77", train, val, read("test.csv"))


def load_snips(root: Path | None = None) -> Dataset:
    """SNIPS with intents and slots; text is the tokens joined by single spaces."""
    folder = _folder(root, "snips") / "data" / "snips"

    def read(name: str) -> tuple[Example, ...]:
        words = (folder / name / "seq.in").read_text(encoding="utf-8").splitlines()
        tags = (folder / name / "seq.out").read_text(encoding="utf-8").splitlines()
        labels = (folder / name / "label").read_text(encoding="utf-8").splitlines()
        if not len(words) == len(tags) == len(labels):
            raise ValueError(
                f"{folder / name}: {len(words)} texts, {len(tags)} tag lines, {len(labels)} labels"
            )
        out = []
        for w, t, label in zip(words, tags, labels, strict=True):
            text, spans = spans_from_bio(w.split(), t.split())
            out.append(Example(text=text, intents=(label.strip(),), entities=spans))
        return tuple(out)

    return Dataset("snips", read("train"), read("valid"), read("test"))


def _nlupp_fold(path: Path) -> list[Example]:
    out = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        text = row["text"]
        spans = []
        for slot, value in (row.get("slots") or {}).items():
            start, end = value["span"]
            spans.append(Span(int(start), int(end), slot))
        out.append(Example(text=text, intents=tuple(row.get("intents") or ()), entities=tuple(sorted(spans))))
    return out


def load_nlupp(
    domain: str = "banking", root: Path | None = None, test_folds: Sequence[int] = NLUPP_TEST_FOLDS
) -> Dataset:
    """NLU++ for ``domain`` ("banking", "hotels" or "all"): train on every fold but ``test_folds``."""
    domains = ("banking", "hotels") if domain == "all" else (domain,)
    if not set(domains) <= {"banking", "hotels"}:
        raise ValueError(f"NLU++ domain must be banking, hotels or all, not {domain!r}")
    folder = _folder(root, "nlupp") / "nlupp" / "data"
    train: list[Example] = []
    test: list[Example] = []
    for fold in range(NLUPP_FOLDS):
        for d in domains:
            (test if fold in test_folds else train).extend(_nlupp_fold(folder / d / f"fold{fold}.json"))
    return Dataset(f"nlupp-{domain}", tuple(train), (), tuple(test))


LOADERS = {
    "clinc150": load_clinc150,
    "banking77": load_banking77,
    "snips": load_snips,
    "nlupp-banking": lambda root=None: load_nlupp("banking", root),
    "nlupp-hotels": lambda root=None: load_nlupp("hotels", root),
}
