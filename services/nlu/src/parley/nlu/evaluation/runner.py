"""Running a parser over labelled examples and scoring it; ``parley eval nlu`` (:func:`eval_command`).

Whatever the model, it is reached through its batch API, ``predict(texts) -> [ParseResult]``, so the
same scoring serves the service's parser, the benchmark baselines and cross-validation.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from parley.core.errors import InvalidInputError
from parley.core.logging import get_logger
from parley.core.project import IntentSpec, Project, load_project
from parley.nlu.domain.parser import FALLBACK_INTENT
from parley.nlu.evaluation import metrics
from parley.nlu.evaluation.examples import (
    OUT_OF_SCOPE,
    Example,
    Span,
    bio_tags,
    examples_from_nlu,
    load_examples,
)
from parley.nlu.evaluation.report import write_report
from parley.nlu.evaluation.results import EvalResults
from parley.nlu.ports import Encoder
from parley.nlu.settings import NluSettings
from parley.nlu.v1 import nlu_pb2

log = get_logger(__name__)

Predict = Callable[[Sequence[str]], Sequence[nlu_pb2.ParseResult]]

#: Label of "no intent" (a gold example without intents, or a fallback) when there is no OOS label.
NO_INTENT = "(no intent)"
DEFAULT_FOLDS = 5


def is_fallback(result: nlu_pb2.ParseResult) -> bool:
    """Whether the parser declined to pick an intent (out of scope or not confident enough)."""
    return result.out_of_scope or result.intent.name == FALLBACK_INTENT or not result.intent.name


def predicted_intents(result: nlu_pb2.ParseResult) -> tuple[str, ...]:
    """The intents a result claims: its multi-intent list, else its top intent, none when it fell back."""
    if result.intents:
        return tuple(i.name for i in result.intents if i.name != FALLBACK_INTENT)
    return () if is_fallback(result) else (result.intent.name,)


def _top_ranked(result: nlu_pb2.ParseResult) -> str:
    """The best intent of the ranking, even when the parser fell back."""
    return result.ranking[0].name if result.ranking else result.intent.name


def predict_all(
    predict: Predict, texts: Sequence[str], *, batch_size: int = 128, progress: bool = True, desc: str = ""
) -> list[nlu_pb2.ParseResult]:
    """``predict`` over ``texts`` in batches (the gRPC API takes at most 256), in order."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    results: list[nlu_pb2.ParseResult] = []
    with tqdm(
        total=len(texts), desc=desc or "parsing", unit="utt", leave=False, disable=None if progress else True
    ) as bar:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out = list(predict(batch))
            if len(out) != len(batch):
                raise ValueError(f"predict returned {len(out)} results for {len(batch)} texts")
            results.extend(out)
            bar.update(len(batch))
    return results


def score(
    examples: Sequence[Example],
    results: Sequence[nlu_pb2.ParseResult],
    oos_label: str | None = None,
    *,
    entities: bool = True,
) -> EvalResults:
    """Score parse ``results`` against ``examples`` (same order).

    Slot scores are computed when ``entities`` is set and some example has gold entities; multi-label
    scores when some example has more than one gold intent. A top intent counts as right when it is any
    of the example's intents; a fallback is right for an example without intents (or gold ``oos_label``).
    """
    if len(examples) != len(results):
        raise ValueError(f"{len(examples)} examples but {len(results)} results")
    none_label = oos_label or NO_INTENT
    pred = [none_label if is_fallback(r) else r.intent.name for r in results]
    gold_sets = [set(e.intents) - {oos_label} for e in examples]
    # The gold label of an example is the predicted intent when it is one of its intents (any intent of a
    # multi-intent message is a right answer at the top), else its first intent, else "no intent".
    gold = [
        p if p in g else (e.intents[0] if e.intents else none_label)
        for e, g, p in zip(examples, gold_sets, pred, strict=True)
    ]
    multilabel = None
    if any(len(e.intents) > 1 for e in examples):
        pred_sets = [set(predicted_intents(r)) for r in results]
        multilabel = metrics.multilabel_scores(gold_sets, pred_sets)
    correct = [g == p for g, p in zip(gold, pred, strict=True)]
    # Calibration of the decisions the model committed to: a fallback carries the confidence of an
    # intent it did not choose, so it is left out (closed-set models never fall back).
    committed = [i for i, r in enumerate(results) if not is_fallback(r)]
    confidences = [float(results[i].intent.confidence) for i in committed]
    hits = [correct[i] for i in committed]
    matrix = metrics.confusion(gold, pred)
    slots = None
    if entities and any(e.entities for e in examples):
        gold_tags = [bio_tags(e.text, e.entities) for e in examples]
        pred_tags = [
            bio_tags(e.text, [Span(x.start, x.end, x.type) for x in r.entities])
            for e, r in zip(examples, results, strict=True)
        ]
        slots = metrics.slot_scores(gold_tags, pred_tags)
    has_oos = oos_label is not None and any(g == oos_label for g in gold)
    in_scope = [i for i, g in enumerate(gold_sets) if g]
    top1 = None
    if has_oos and in_scope:
        top1 = sum(_top_ranked(results[i]) in gold_sets[i] for i in in_scope) / len(in_scope)
    return EvalResults(
        examples=len(examples),
        accuracy=metrics.accuracy(gold, pred),
        macro_f1=metrics.macro_f1(gold, pred),
        ece=metrics.expected_calibration_error(confidences, hits),
        reliability=tuple(metrics.reliability_bins(confidences, hits)),
        per_intent=metrics.per_label_scores(gold, pred),
        confusion=matrix,
        confused_pairs=tuple(metrics.top_confused_pairs(matrix, 20)),
        oos_label=oos_label,
        in_scope_accuracy=metrics.in_scope_accuracy(gold, pred, oos_label) if has_oos and oos_label else None,
        oos=metrics.oos_scores(gold, pred, oos_label) if has_oos and oos_label else None,
        in_scope_top1=top1,
        multilabel=multilabel,
        slots=slots,
    )


def evaluate(
    predict: Predict,
    examples: Sequence[Example],
    oos_label: str | None = None,
    *,
    entities: bool = True,
    batch_size: int = 128,
    progress: bool = True,
    desc: str = "evaluating",
) -> EvalResults:
    """Parse every example's text with ``predict`` and score the results (see :func:`score`).

    ``timings`` gets ``predict_s`` and ``examples_per_s`` (batched throughput of ``predict``).
    """
    started = time.perf_counter()
    results = predict_all(
        predict, [e.text for e in examples], batch_size=batch_size, progress=progress, desc=desc
    )
    seconds = time.perf_counter() - started
    scored = score(examples, results, oos_label, entities=entities)
    rate = len(examples) / seconds if seconds > 0 else 0.0
    return scored.with_timings(predict_s=round(seconds, 3), examples_per_s=round(rate, 1))


class CachingEncoder:
    """An :class:`Encoder` that remembers embeddings by text, so k folds encode each text once."""

    def __init__(self, inner: Encoder) -> None:
        self._inner = inner
        self._cache: dict[str, npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embeddings of ``texts``; only the texts never seen before reach the wrapped encoder."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            fresh = self._inner.encode(missing)
            with self._lock:
                self._cache.update(zip(missing, fresh, strict=True))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self._lock:
            for i, text in enumerate(texts):
                out[i] = self._cache[text]
        return out


@dataclass(frozen=True)
class FoldPlan:
    """The fold of every example: per intent (in ``nlu.yml`` order), and of the out-of-scope examples.

    Fold -1 means never held out: an intent with one example would vanish from training.
    """

    intents: dict[str, list[int]]
    out_of_scope: list[int]


def _spread(n: int, folds: int, offset: int, rng: random.Random) -> list[int]:
    if n < 2:
        return [-1] * n
    order = list(range(n))
    rng.shuffle(order)
    fold_of = [0] * n
    for position, index in enumerate(order):
        fold_of[index] = (position + offset) % folds
    return fold_of


def fold_assignment(project: Project, folds: int, seed: int = 13) -> FoldPlan:
    """Stratified, seeded folds: each intent's examples are spread evenly over ``folds`` folds."""
    if folds < 2:
        raise InvalidInputError(f"cross-validation needs at least 2 folds, got {folds}")
    rng = random.Random(seed)
    offset = 0
    intents: dict[str, list[int]] = {}
    for name in sorted(project.nlu.intents):
        n = len(project.nlu.intents[name].examples)
        intents[name] = _spread(n, folds, offset, rng)
        offset += n  # rotates which fold small intents start in, so folds stay balanced
    plan = {name: intents[name] for name in project.nlu.intents}
    return FoldPlan(plan, _spread(len(project.nlu.out_of_scope), folds, offset, rng))


def _fold_project(project: Project, plan: FoldPlan, fold: int) -> Project:
    intents = {
        name: IntentSpec(
            examples=[x for x, f in zip(spec.examples, plan.intents[name], strict=True) if f != fold]
        )
        for name, spec in project.nlu.intents.items()
    }
    oos = [x for x, f in zip(project.nlu.out_of_scope, plan.out_of_scope, strict=True) if f != fold]
    nlu = project.nlu.model_copy(update={"intents": intents, "out_of_scope": oos})
    return project.model_copy(update={"nlu": nlu})


def cross_validate(
    project: Project,
    encoder: Encoder,
    *,
    folds: int = DEFAULT_FOLDS,
    progress: bool = True,
) -> EvalResults:
    """k-fold cross-validation of the project's own training on its own examples, pooled over folds.

    Each fold trains a model on the other folds with :func:`parley.nlu.training.load_or_train` (in a
    temporary folder) and parses the held-out examples with the project's parser. The project's
    ``out_of_scope`` examples are folded too and scored as :data:`OUT_OF_SCOPE`.
    """
    from parley.nlu.training import build_parser, load_or_train  # noqa: PLC0415 - loads torch

    plan = fold_assignment(project, folds)
    order = [*(f for name in project.nlu.intents for f in plan.intents[name]), *plan.out_of_scope]
    everything = examples_from_nlu(project)  # same order: intents as written, then out_of_scope
    cached = CachingEncoder(encoder)
    examples: list[Example] = []
    results: list[nlu_pb2.ParseResult] = []
    train_s = 0.0
    with tempfile.TemporaryDirectory(prefix="parley-eval-cv-") as tmp:
        for fold in tqdm(
            range(folds), desc="cross-validation", unit="fold", disable=None if progress else True
        ):
            test = [e for e, f in zip(everything, order, strict=True) if f == fold]
            if not test:
                continue
            sub = _fold_project(project, plan, fold)
            started = time.perf_counter()
            model = load_or_train(sub, Path(tmp) / f"fold-{fold}", cached, progress=False)
            train_s += time.perf_counter() - started
            parser = build_parser(sub, model, cached)
            results.extend(predict_all(parser.parse_batch, [e.text for e in test], progress=False))
            examples.extend(test)
    scored = score(examples, results, OUT_OF_SCOPE)
    return scored.with_timings(train_s=round(train_s, 3), folds=float(folds))


def eval_command(
    project_dir: Path,
    test_file: Path | None,
    out_dir: Path,
    *,
    settings: NluSettings | None = None,
    folds: int = DEFAULT_FOLDS,
    progress: bool = True,
) -> Path:
    """``parley eval nlu``: evaluate the project's parser and write the report; return ``report.md``.

    With ``test_file`` (same format as ``nlu.yml``) the project's trained model (from the model folder,
    trained now when none matches its data) parses it; its ``out_of_scope`` examples should fall back.
    Without one, ``folds``-fold cross-validation on the project's own examples. ``report.html`` and
    ``results.json`` are written beside ``report.md``.
    """
    settings = settings or NluSettings()
    project = load_project(project_dir)
    name = project.assistant.name
    if test_file is not None:
        from parley.nlu.app import build_nlu  # noqa: PLC0415 - the model the service runs

        examples = load_examples(test_file)
        parser = build_nlu(settings, project).parser
        results = evaluate(parser.parse_batch, examples, OUT_OF_SCOPE, progress=progress)
        title = f"NLU evaluation: {name} on {test_file.name} (model {parser.model_version})"
    else:
        from parley.nlu.adapters.encoder import TransformerEncoder  # noqa: PLC0415 - loads torch

        encoder = TransformerEncoder(
            device=settings.device, num_threads=settings.num_threads, batch_size=settings.batch_size
        )
        # Cross-validation retrains k times: on the intent head, which trains in a second.
        results = cross_validate(project, encoder, folds=folds, progress=progress)
        title = f"NLU evaluation: {name}, {folds}-fold cross-validation"
    path = write_report(results, out_dir, title)
    log.info("nlu evaluation written", report=str(path), accuracy=round(results.accuracy, 4))
    return path
