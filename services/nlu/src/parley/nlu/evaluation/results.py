"""What one evaluation found: headline scores plus the detail the report plots."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from parley.nlu.evaluation.metrics import (
    PRF,
    CalibrationBin,
    ConfusedPair,
    Confusion,
    MultiLabelScores,
    SlotScores,
)


@dataclass(frozen=True)
class EvalResults:
    """Scores of one model on one test set.

    ``accuracy``, ``macro_f1``, ``per_intent`` and the confusion matrix compare the top intent with the
    gold intents: right when it is one of them (any intent of a multi-intent message), or when the model
    fell back on an example without intents or labelled ``oos_label``. ``multilabel`` scores the whole
    predicted set when some example has several intents. ``ece`` and ``reliability`` cover the
    predictions that named an intent (not the fallbacks), with the top intent's confidence. ``timings``
    holds seconds and rates the caller measured (``train_s``, ``predict_s``, ``examples_per_s``).
    """

    examples: int
    accuracy: float
    macro_f1: float
    ece: float
    reliability: tuple[CalibrationBin, ...]
    per_intent: dict[str, PRF]
    confusion: Confusion
    confused_pairs: tuple[ConfusedPair, ...]
    oos_label: str | None = None
    in_scope_accuracy: float | None = None
    #: Top-ranked intent right on in-scope examples, whatever the fallback threshold (classifier quality).
    in_scope_top1: float | None = None
    oos: PRF | None = None
    multilabel: MultiLabelScores | None = None
    slots: SlotScores | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def headline(self) -> dict[str, float]:
        """The scalar scores by name, in the order reports list them."""
        out: dict[str, float] = {"accuracy": self.accuracy, "macro-F1": self.macro_f1}
        if self.in_scope_accuracy is not None:
            out["in-scope accuracy"] = self.in_scope_accuracy
        if self.in_scope_top1 is not None:
            out["in-scope accuracy (no threshold)"] = self.in_scope_top1
        if self.oos is not None:
            out["OOS precision"] = self.oos.precision
            out["OOS recall"] = self.oos.recall
            out["OOS F1"] = self.oos.f1
        if self.multilabel is not None:
            out["multi-label micro-F1"] = self.multilabel.micro_f1
            out["multi-label macro-F1"] = self.multilabel.macro_f1
            out["exact-set accuracy"] = self.multilabel.exact_match
        if self.slots is not None:
            out["slot precision"] = self.slots.precision
            out["slot recall"] = self.slots.recall
            out["slot F1"] = self.slots.f1
        out["ECE (15 bins)"] = self.ece
        return out

    def with_timings(self, **timings: float) -> EvalResults:
        """A copy with ``timings`` added (e.g. the training time measured around ``evaluate``)."""
        return EvalResults(**{**self.__dict__, "timings": {**self.timings, **timings}})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: every score, the reliability bins and the confused pairs (not the matrix)."""
        data = asdict(self)
        data["confusion"] = {"labels": list(self.confusion.labels)}
        data["headline"] = self.headline()
        return data
