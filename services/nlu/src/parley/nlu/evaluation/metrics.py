"""Evaluation metrics as pure functions over gold and predicted labels (no model, no I/O).

Single-label intent scores come from scikit-learn, slot scores from seqeval (entity-level, conlleval
rules), calibration is the 15-bin expected calibration error of Guo et al. (2017).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

ECE_BINS = 15


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 of one class (or one kind of span), with its gold count."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class MultiLabelScores:
    """Scores of set-valued predictions: micro/macro F1 over labels and the share of exact sets."""

    micro_f1: float
    macro_f1: float
    exact_match: float
    per_label: dict[str, PRF]


@dataclass(frozen=True)
class SlotScores:
    """Entity-level precision/recall/F1 (a span counts only with its exact type and boundaries)."""

    precision: float
    recall: float
    f1: float
    per_type: dict[str, PRF]


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of a reliability diagram: confidences in ``(lower, upper]`` (the first bin includes 0)."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True)
class Confusion:
    """A confusion matrix: ``matrix[i, j]`` counts gold ``labels[i]`` predicted as ``labels[j]``."""

    labels: tuple[str, ...]
    matrix: npt.NDArray[np.int64]


@dataclass(frozen=True)
class ConfusedPair:
    """How often gold ``gold`` was predicted as ``predicted``."""

    gold: str
    predicted: str
    count: int


def _check_lengths(gold: Sequence[object], predicted: Sequence[object]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of predictions equal to their gold label (0 for no examples)."""
    _check_lengths(gold, predicted)
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Unweighted mean of per-label F1 over every label seen in gold or predictions."""
    _check_lengths(gold, predicted)
    if not gold:
        return 0.0
    return float(f1_score(list(gold), list(predicted), average="macro", zero_division=0))


def per_label_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, PRF]:
    """Precision/recall/F1 of every label seen in gold or predictions, by label name."""
    _check_lengths(gold, predicted)
    labels = sorted(set(gold) | set(predicted))
    if not labels:
        return {}
    p, r, f, s = precision_recall_fscore_support(list(gold), list(predicted), labels=labels, zero_division=0)
    return {label: PRF(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, label in enumerate(labels)}


def in_scope_accuracy(gold: Sequence[str], predicted: Sequence[str], oos_label: str) -> float:
    """Accuracy over the examples whose gold label is not ``oos_label`` (predicting OOS counts wrong)."""
    _check_lengths(gold, predicted)
    pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != oos_label]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


def oos_scores(gold: Sequence[str], predicted: Sequence[str], oos_label: str) -> PRF:
    """Out-of-scope detection as a binary task: precision, recall and F1 of ``oos_label``."""
    _check_lengths(gold, predicted)
    true_pos = sum(g == oos_label and p == oos_label for g, p in zip(gold, predicted, strict=True))
    gold_pos = sum(g == oos_label for g in gold)
    pred_pos = sum(p == oos_label for p in predicted)
    precision = true_pos / pred_pos if pred_pos else 0.0
    recall = true_pos / gold_pos if gold_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision, recall, f1, gold_pos)


def multilabel_scores(
    gold: Sequence[Collection[str]], predicted: Sequence[Collection[str]]
) -> MultiLabelScores:
    """Micro/macro F1 over labels for set-valued intents (NLU++), plus exact-set accuracy.

    Macro F1 averages over the labels present in gold or predictions; an empty gold and predicted set
    is an exact match (NLU++ has slot-only turns such as "today").
    """
    _check_lengths(gold, predicted)
    if not gold:
        return MultiLabelScores(0.0, 0.0, 0.0, {})
    labels = sorted(set().union(*gold, *predicted))
    exact = sum(set(g) == set(p) for g, p in zip(gold, predicted, strict=True)) / len(gold)
    if not labels:
        return MultiLabelScores(0.0, 0.0, exact, {})
    binarizer = MultiLabelBinarizer(classes=labels)
    y_true = binarizer.fit_transform([set(g) for g in gold])
    y_pred = binarizer.transform([set(p) for p in predicted])
    micro = float(f1_score(y_true, y_pred, average="micro", zero_division=0))
    macro = float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, zero_division=0)
    per_label = {
        label: PRF(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, label in enumerate(labels)
    }
    return MultiLabelScores(micro, macro, exact, per_label)


def slot_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> SlotScores:
    """Entity-level scores of BIO tag sequences with seqeval (default conlleval mode)."""
    _check_lengths(gold, predicted)
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    y_true, y_pred = [list(g) for g in gold], [list(p) for p in predicted]
    report = seqeval_report(y_true, y_pred, output_dict=True, zero_division=0)
    per_type = {
        name: PRF(float(row["precision"]), float(row["recall"]), float(row["f1-score"]), int(row["support"]))
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return SlotScores(
        precision=float(seqeval_precision(y_true, y_pred, zero_division=0)),
        recall=float(seqeval_recall(y_true, y_pred, zero_division=0)),
        f1=float(seqeval_f1(y_true, y_pred, zero_division=0)),
        per_type=per_type,
    )


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> list[CalibrationBin]:
    """Equal-width confidence bins with the mean confidence and the accuracy of each (empty bins kept)."""
    _check_lengths(confidences, correct)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf = np.clip(np.asarray(confidences, dtype=np.float64), 0.0, 1.0)
    hits = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    bins: list[CalibrationBin] = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        bins.append(
            CalibrationBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=count,
                confidence=float(conf[members].mean()) if count else 0.0,
                accuracy=float(hits[members].mean()) if count else 0.0,
            )
        )
    return bins


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> float:
    """Sum over bins of (share of examples in the bin) x |accuracy - mean confidence|."""
    bins = reliability_bins(confidences, correct, n_bins)
    total = sum(b.count for b in bins)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins)


def confusion(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] | None = None
) -> Confusion:
    """The confusion matrix over ``labels`` (default: every label seen, sorted)."""
    _check_lengths(gold, predicted)
    names = tuple(labels) if labels is not None else tuple(sorted(set(gold) | set(predicted)))
    if not names:
        return Confusion((), np.zeros((0, 0), dtype=np.int64))
    matrix = sk_confusion_matrix(list(gold), list(predicted), labels=list(names))
    return Confusion(names, matrix.astype(np.int64))


def top_confused_pairs(matrix: Confusion, n: int = 10) -> list[ConfusedPair]:
    """The ``n`` most frequent (gold, predicted) mistakes, most frequent first, ties by name."""
    pairs = [
        ConfusedPair(matrix.labels[i], matrix.labels[j], int(matrix.matrix[i, j]))
        for i, j in zip(*np.nonzero(matrix.matrix), strict=True)
        if i != j
    ]
    pairs.sort(key=lambda p: (-p.count, p.gold, p.predicted))
    return pairs[:n]
