"""NLU accuracy on public benchmarks: the usual baseline next to Parley's models, in one run.

Per data set (see bench/datasets.py for the splits):

- ``baseline``: what a team would try first. TF-IDF over word 1-2-grams and char 3-5-grams with a
  logistic regression (one-vs-rest for NLU++'s multi-label intents, a label when its probability is at
  least 0.5); for slots (SNIPS, NLU++) a linear-SVM token tagger over window features.
- ``parley``: the service's current model, trained through ``parley.nlu.training`` (sentence encoder plus
  the intent head) and scored with the parser's decision rule (top intent; fallback below a threshold).
  It has no slot tagger and a single-label head, so it is scored on intents only and not run on NLU++.
- ``joint``: ``bench/nlu_joint.py``'s ``train_and_eval`` when that module exists and
  ``PARLEY_BENCH_JOINT=1`` (it fine-tunes a transformer: minutes).

CLINC150: both systems train on the in-scope examples only; the out-of-scope threshold on the top
confidence is chosen on the validation split to maximise the mean of in-scope accuracy and OOS recall
(each system gets the same procedure). Closed-set data sets use no threshold (every test example has an
intent). ``PARLEY_BENCH_DATASETS=clinc150,snips`` limits the data sets, ``PARLEY_BENCH_SYSTEMS`` the
systems (default ``baseline,parley``). Reports land in ``.local/bench/<dataset>/``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.datasets import LOADERS, Dataset
from parley.nlu.domain.parser import FALLBACK_INTENT
from parley.nlu.evaluation.examples import Example, bio_tags, spans_from_tags, tokens
from parley.nlu.evaluation.report import write_report
from parley.nlu.evaluation.results import EvalResults
from parley.nlu.evaluation.runner import Predict, evaluate, predict_all
from parley.nlu.v1 import nlu_pb2

REPORTS = Path(__file__).resolve().parents[1] / ".local" / "bench"
SYSTEMS = ("baseline", "parley")
MULTI_LABEL_THRESHOLD = 0.5
RANKING_SIZE = 5
CITATIONS = {
    "clinc150": "CLINC150 (Larson et al. 2019, CC BY 3.0)",
    "banking77": "BANKING77 (Casanueva et al. 2020, CC BY 4.0)",
    "snips": "SNIPS (Coucke et al. 2018, split of Goo et al. 2018, CC0)",
    "nlupp-banking": "NLU++ banking (Casanueva et al. 2022, CC BY 4.0)",
    "nlupp-hotels": "NLU++ hotels (Casanueva et al. 2022, CC BY 4.0)",
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the baseline ---------------------------------------------------------------------------------


class TfidfIntentClassifier:
    """TF-IDF (word 1-2-grams + char_wb 3-5-grams, sublinear tf) and logistic regression (C=10).

    Multinomial (lbfgs) for single-label data; one-vs-rest (liblinear) for multi-label data.
    """

    def __init__(self, multi_label: bool = False, c: float = 10.0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
        from sklearn.multiclass import OneVsRestClassifier  # noqa: PLC0415
        from sklearn.pipeline import FeatureUnion  # noqa: PLC0415

        self.multi_label = multi_label
        self._features = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)),
                (
                    "char",
                    TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
                ),
            ]
        )
        # liblinear fits the many small binary problems of one-vs-rest ~6x faster than lbfgs.
        self._model: Any = (
            OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear"))
            if multi_label
            else LogisticRegression(C=c, max_iter=2000)
        )
        self.labels: tuple[str, ...] = ()

    def fit(self, examples: Sequence[Example]) -> TfidfIntentClassifier:
        """Learn from ``examples`` (their first intent, or every intent when multi-label)."""
        x = self._features.fit_transform([e.text for e in examples])
        if self.multi_label:
            from sklearn.preprocessing import MultiLabelBinarizer  # noqa: PLC0415

            binarizer = MultiLabelBinarizer()
            y = binarizer.fit_transform([e.intents for e in examples])
            self.labels = tuple(binarizer.classes_)
        else:
            y = [e.intents[0] for e in examples]
        self._model.fit(x, y)
        if not self.multi_label:
            self.labels = tuple(self._model.classes_)
        return self

    def probabilities(self, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        """``(len(texts), len(labels))`` probabilities (independent per label when multi-label)."""
        return np.asarray(self._model.predict_proba(self._features.transform(list(texts))))


class TokenTagger:
    """A linear-SVM BIO tagger over whitespace tokens with a +-2 token window of features.

    (A linear SVM rather than a logistic regression: 20x faster to fit on SNIPS, and as accurate.)
    """

    def __init__(self, c: float = 0.5) -> None:
        from sklearn.feature_extraction import DictVectorizer  # noqa: PLC0415
        from sklearn.svm import LinearSVC  # noqa: PLC0415

        self._vectorizer = DictVectorizer()
        self._model = LinearSVC(C=c)

    @staticmethod
    def _int32(matrix: Any) -> Any:
        """liblinear refuses the int64 indices DictVectorizer produces."""
        matrix = matrix.tocsr()
        matrix.indices = matrix.indices.astype(np.int32)
        matrix.indptr = matrix.indptr.astype(np.int32)
        return matrix

    @staticmethod
    def _features(words: Sequence[str]) -> list[dict[str, Any]]:
        lower = [w.lower() for w in words]
        padded = ["<s>", "<s>", *lower, "</s>", "</s>"]
        out = []
        for i, word in enumerate(words):
            lw = lower[i]
            shape = re.sub(r"[A-Z]+", "A", re.sub(r"[a-z]+", "a", re.sub(r"[0-9]+", "0", word)))
            feats: dict[str, Any] = {
                "w": lw,
                "pre3": lw[:3],
                "suf3": lw[-3:],
                "suf2": lw[-2:],
                "shape": shape,
                "title": word[:1].isupper(),
                "digit": any(ch.isdigit() for ch in word),
                "w-1|w": f"{padded[i + 1]}|{lw}",
                "w|w+1": f"{lw}|{padded[i + 3]}",
            }
            for d in (-2, -1, 1, 2):
                feats[f"w{d:+d}"] = padded[i + 2 + d]
            out.append(feats)
        return out

    def fit(self, examples: Sequence[Example]) -> TokenTagger:
        """Learn token tags from the gold spans of ``examples``."""
        feats: list[dict[str, Any]] = []
        tags: list[str] = []
        for e in examples:
            feats += self._features([e.text[s:t] for s, t in tokens(e.text)])
            tags += bio_tags(e.text, e.entities)
        self._model.fit(self._int32(self._vectorizer.fit_transform(feats)), tags)
        return self

    def spans(self, texts: Sequence[str]) -> list[tuple[Any, ...]]:
        """Predicted entity spans of each text."""
        offsets = [tokens(t) for t in texts]
        feats = [
            f for t, o in zip(texts, offsets, strict=True) for f in self._features([t[s:e] for s, e in o])
        ]
        if not feats:
            return [() for _ in texts]
        flat = list(self._model.predict(self._int32(self._vectorizer.transform(feats))))
        out, position = [], 0
        for o in offsets:
            out.append(spans_from_tags(o, flat[position : position + len(o)]))
            position += len(o)
        return out


def _result(
    text: str,
    labels: Sequence[str],
    probs: npt.NDArray[np.float64],
    threshold: float,
    multi_label: bool,
    spans: Sequence[Any] = (),
    version: str = "baseline",
) -> nlu_pb2.ParseResult:
    order = np.argsort(-probs, kind="stable")
    ranking = [nlu_pb2.Intent(name=labels[i], confidence=float(probs[i])) for i in order[:RANKING_SIZE]]
    best = ranking[0]
    if multi_label:
        chosen = [
            nlu_pb2.Intent(name=labels[i], confidence=float(probs[i])) for i in order if probs[i] >= threshold
        ]
        out_of_scope = not chosen
    else:
        out_of_scope = best.confidence < threshold
        chosen = [] if out_of_scope else [best]
    top = nlu_pb2.Intent(name=FALLBACK_INTENT, confidence=best.confidence) if out_of_scope else best
    entities = [
        nlu_pb2.Entity(
            type=s.type, text=text[s.start : s.end], value=text[s.start : s.end], start=s.start, end=s.end
        )
        for s in spans
    ]
    return nlu_pb2.ParseResult(
        text=text,
        intent=top,
        ranking=ranking,
        intents=chosen,
        out_of_scope=out_of_scope,
        entities=entities,
        model_version=version,
    )


def tune_oos_threshold(
    top_confidences: Sequence[float], top_intents: Sequence[str], gold: Sequence[str], oos_label: str
) -> float:
    """The threshold on the top confidence maximising (in-scope accuracy + OOS recall) / 2 on ``gold``."""
    conf = np.asarray(top_confidences)
    in_scope = np.asarray([g != oos_label for g in gold])
    right = np.asarray([p == g for p, g in zip(top_intents, gold, strict=True)])
    best, best_score = 0.0, -1.0
    for threshold in np.round(np.arange(0.0, 1.0, 0.01), 2):
        accepted = conf >= threshold
        score = (right & accepted)[in_scope].mean() + (~accepted)[~in_scope].mean()
        if score > best_score + 1e-12:
            best, best_score = float(threshold), float(score)
    return best


def _in_scope(ds: Dataset) -> list[Example]:
    return [e for e in ds.train if ds.oos_label is None or e.intents != (ds.oos_label,)]


def run_baseline(ds: Dataset) -> EvalResults:
    """Train the TF-IDF baseline (and a tagger where there are slots) on train; score it on test."""
    started = time.perf_counter()
    classifier = TfidfIntentClassifier(multi_label=ds.multi_label).fit(_in_scope(ds))
    intent_s = time.perf_counter() - started
    tagger = TokenTagger().fit(ds.train) if ds.has_slots else None
    train_s = time.perf_counter() - started
    threshold = MULTI_LABEL_THRESHOLD if ds.multi_label else 0.0
    if ds.oos_label is not None:
        probs = classifier.probabilities([e.text for e in ds.val])
        threshold = tune_oos_threshold(
            probs.max(axis=1),
            [classifier.labels[i] for i in probs.argmax(axis=1)],
            [e.intents[0] for e in ds.val],
            ds.oos_label,
        )
    _log(f"{ds.name} baseline: trained in {train_s:.1f} s (intents {intent_s:.1f} s), threshold {threshold}")

    def predict(texts: Sequence[str]) -> list[nlu_pb2.ParseResult]:
        probs = classifier.probabilities(texts)
        spans = tagger.spans(texts) if tagger else [() for _ in texts]
        return [
            _result(t, classifier.labels, p, threshold, ds.multi_label, s)
            for t, p, s in zip(texts, probs, spans, strict=True)
        ]

    results = evaluate(predict, ds.test, ds.oos_label, desc=f"{ds.name} baseline").with_timings(
        train_s=round(train_s, 2)
    )
    if ds.multi_label:
        return results.with_timings(label_threshold=threshold)
    return results.with_timings(oos_threshold=threshold) if ds.oos_label else results


# --- Parley's model -------------------------------------------------------------------------------


def _project_names(intents: Sequence[str]) -> dict[str, str]:
    """Intent name -> a name ``nlu.yml`` accepts (BANKING77 has ``reverted_card_payment?``)."""
    out: dict[str, str] = {}
    for intent in sorted(intents):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", intent).strip(".") or "intent"
        while safe in out.values():
            safe += "_"
        out[intent] = safe
    return out


def _bench_project(name: str, examples: Sequence[Example], fallback_threshold: float) -> Any:
    """An in-memory assistant project holding ``examples`` as its NLU data (no files).

    Intent names pass through :func:`_project_names`.
    """
    from parley.core.flows import EndStep, FlowsFileV2, FlowSpec  # noqa: PLC0415
    from parley.core.project import (  # noqa: PLC0415
        AssistantFile,
        IntentSpec,
        NluFile,
        NluSettings,
        Project,
        ResponsesFile,
    )

    names = _project_names({e.intents[0] for e in examples})
    by_intent: dict[str, list[str]] = {}
    for e in examples:
        by_intent.setdefault(names[e.intents[0]], []).append(e.text)
    return Project(
        root=Path(tempfile.gettempdir()),
        assistant=AssistantFile(name=f"bench-{name}", nlu=NluSettings(fallback_threshold=fallback_threshold)),
        nlu=NluFile(intents={k: IntentSpec(examples=v) for k, v in sorted(by_intent.items())}),
        flows=FlowsFileV2(flows={"bench": FlowSpec(steps=[EndStep()])}),
        responses=ResponsesFile(responses={}),
    )


def run_parley(ds: Dataset, encoder: Any) -> EvalResults:
    """Train Parley's current model on train (in-scope) with the service's training code; score it.

    The model (sentence encoder + intent head, from :func:`parley.nlu.training.load_or_train`) is scored
    with the parser's decision rule: the top intent, or a fallback below the threshold. The parser's
    other stages (spelling, rule entities, sentiment...) are not what this measures; bench/nlu.py times
    the whole pipeline.
    """
    from parley.nlu.training import load_or_train  # noqa: PLC0415

    project = _bench_project(ds.name, _in_scope(ds), 0.0)
    back = {v: k for k, v in _project_names(ds.intents).items()}
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        started = time.perf_counter()
        model = load_or_train(project, Path(tmp), encoder, progress=True)
        train_s = time.perf_counter() - started
    classifier = model.classifier
    labels = [back.get(name, name) for name in classifier.intents]

    def predictor(threshold: float) -> Predict:
        def predict(texts: Sequence[str]) -> list[nlu_pb2.ParseResult]:
            probs = classifier.predict(encoder.encode(texts))
            return [
                _result(t, labels, p, threshold, False, version=model.info.version)
                for t, p in zip(texts, probs, strict=True)
            ]

        return predict

    threshold = 0.0
    if ds.oos_label is not None:
        val = predict_all(predictor(0.0), [e.text for e in ds.val], desc=f"{ds.name} parley val")
        threshold = tune_oos_threshold(
            [r.ranking[0].confidence for r in val],
            [r.ranking[0].name for r in val],
            [e.intents[0] for e in ds.val],
            ds.oos_label,
        )
    _log(f"{ds.name} parley: trained in {train_s:.1f} s (with encoding), threshold {threshold}")
    results = evaluate(predictor(threshold), ds.test, ds.oos_label, entities=False, desc=f"{ds.name} parley")
    results = results.with_timings(train_s=round(train_s, 2))
    return results.with_timings(oos_threshold=threshold) if ds.oos_label else results


# --- the fine-tuned joint model (bench/nlu_joint.py, optional) ---------------------------------------


def run_joint(ds: Dataset) -> EvalResults | dict[str, Any] | None:
    """``bench.nlu_joint.train_and_eval`` when present and enabled (PARLEY_BENCH_JOINT=1), else None.

    Its training examples follow the joint model's convention (out-of-scope ones have no intents). It may
    return a ``predict(texts) -> [ParseResult]`` (scored here, so it gets the same report and plots),
    :class:`EvalResults`, or its own metrics as a dict (turned into rows by :func:`joint_rows`).
    """
    if os.environ.get("PARLEY_BENCH_JOINT") != "1" or importlib.util.find_spec("bench.nlu_joint") is None:
        return None
    joint = importlib.import_module("bench.nlu_joint")
    train = [Example(e.text, (), e.entities) if e.intents == (ds.oos_label,) else e for e in ds.train]
    config = {
        "dataset": ds.name,
        "oos_label": ds.oos_label,
        "val_examples": ds.val,
        "multi_label": ds.multi_label,
        # JointConfig fields to override, e.g. PARLEY_BENCH_JOINT_CONFIG='{"epochs": 4}'.
        "joint": json.loads(os.environ.get("PARLEY_BENCH_JOINT_CONFIG", "{}")),
    }
    started = time.perf_counter()
    out = joint.train_and_eval(train, list(ds.test), config)
    seconds = time.perf_counter() - started
    if isinstance(out, EvalResults):
        return out if "train_s" in out.timings else out.with_timings(train_s=round(seconds, 2))
    if isinstance(out, dict):
        return out
    if callable(out):
        predict: Predict = out
        return evaluate(predict, ds.test, ds.oos_label, desc=f"{ds.name} joint").with_timings(
            train_s=round(seconds, 2)
        )
    raise TypeError(f"bench.nlu_joint.train_and_eval returned {type(out).__name__}")


#: The joint model's own metric names -> (row metric, unit, scale to the row's unit).
_JOINT_METRICS = {
    "in_scope_accuracy_with_threshold": ("in-scope accuracy", "%", 100.0),
    "oos_recall": ("OOS recall", "%", 100.0),
    "oos_precision": ("OOS precision", "%", 100.0),
    "oos_f1": ("OOS F1", "%", 100.0),
    "accuracy": ("accuracy", "%", 100.0),
    "macro_f1": ("macro-F1", "%", 100.0),
    "micro_f1": ("multi-label micro-F1", "%", 100.0),
    "exact_set_accuracy": ("exact-set accuracy", "%", 100.0),
    "slot_f1": ("slot F1", "%", 100.0),
    "ece": ("ECE (15 bins)", "%", 100.0),
    "train_s": ("train time", "s", 1.0),
    "latency_p50_ms": ("parse p50 (1 utterance)", "ms", 1.0),
    "latency_p99_ms": ("parse p99 (1 utterance)", "ms", 1.0),
    "throughput_batched_per_s": ("batched throughput (32)", "utterances/s", 1.0),
}


def joint_rows(dataset: str, metrics: dict[str, Any]) -> list[dict[str, object]]:
    """Benchmark rows from the joint model's own metrics dict (its definitions, see bench/nlu_joint.py)."""
    bench = f"{dataset} joint"
    return [
        {"benchmark": bench, "metric": metric, "value": round(float(metrics[key]) * scale, 2), "unit": unit}
        for key, (metric, unit, scale) in _JOINT_METRICS.items()
        if isinstance(metrics.get(key), int | float)
    ]


# --- rows and reports -----------------------------------------------------------------------------

_HEADLINES = {
    "clinc150": (
        "in-scope accuracy",
        "OOS recall",
        "OOS precision",
        "OOS F1",
        "in-scope accuracy (no threshold)",
        "accuracy",
        "macro-F1",
    ),
    "banking77": ("accuracy", "macro-F1"),
    "snips": ("accuracy", "slot F1"),
    "nlupp-banking": ("multi-label micro-F1", "multi-label macro-F1", "exact-set accuracy", "slot F1"),
    "nlupp-hotels": ("multi-label micro-F1", "multi-label macro-F1", "exact-set accuracy", "slot F1"),
}


def rows_for(dataset: str, system: str, results: EvalResults) -> list[dict[str, object]]:
    """Benchmark rows (like bench/stats.py) for one system on one data set."""
    bench = f"{dataset} {system}"
    headline = results.headline()
    rows: list[dict[str, object]] = [
        {"benchmark": bench, "metric": m, "value": round(100 * headline[m], 2), "unit": "%"}
        for m in _HEADLINES.get(dataset, ("accuracy",))
        if m in headline
    ]
    rows.append(
        {"benchmark": bench, "metric": "ECE (15 bins)", "value": round(100 * results.ece, 2), "unit": "%"}
    )
    if "train_s" in results.timings:
        rows.append(
            {"benchmark": bench, "metric": "train time", "value": results.timings["train_s"], "unit": "s"}
        )
    if "examples_per_s" in results.timings:
        rows.append(
            {
                "benchmark": bench,
                "metric": "test throughput (batches of 128)",
                "value": results.timings["examples_per_s"],
                "unit": "utterances/s",
            }
        )
    return rows


def run_dataset(
    name: str, load: Callable[[], Dataset], systems: Sequence[str], encoder: Callable[[], Any]
) -> list[dict[str, object]]:
    """Every requested system on one data set; writes ``.local/bench/<name>/report.md``."""
    ds = load()
    _log(f"== {name}: train {len(ds.train):,} / val {len(ds.val):,} / test {len(ds.test):,}")
    found: dict[str, EvalResults] = {}
    if "baseline" in systems:
        found["baseline (TF-IDF + LR)"] = run_baseline(ds)
    if "parley" in systems and not ds.multi_label:
        found["parley (current model)"] = run_parley(ds, encoder())
    joint = run_joint(ds)
    if isinstance(joint, EvalResults):
        found["joint (fine-tuned)"] = joint
    rows = [r for system, res in found.items() for r in rows_for(name, system.split(" (")[0], res)]
    # The joint model's own metrics are saved first: they cost the most to get.
    if isinstance(joint, dict):
        rows += joint_rows(name, joint)
        (REPORTS / name).mkdir(parents=True, exist_ok=True)
        (REPORTS / name / "joint.json").write_text(json.dumps(joint, indent=2, default=float) + "\n")
        _log(f"{name}: joint model metrics in {REPORTS / name / 'joint.json'}")
    if found:
        title = f"{CITATIONS.get(name, name)}: test split, {len(ds.test):,} examples"
        _log(f"{name}: report {write_report(found, REPORTS / name, title)}")
    return rows


async def bench_nlu_datasets(turns: int, concurrency: int) -> list[dict[str, object]]:
    """Accuracy benchmarks on the shared data sets (``turns``/``concurrency`` do not apply here)."""
    del turns, concurrency
    wanted = [d for d in os.environ.get("PARLEY_BENCH_DATASETS", ",".join(LOADERS)).split(",") if d]
    unknown = sorted(set(wanted) - set(LOADERS))
    if unknown:
        raise ValueError(f"unknown data set(s) in PARLEY_BENCH_DATASETS: {', '.join(unknown)}")
    systems = [s for s in os.environ.get("PARLEY_BENCH_SYSTEMS", ",".join(SYSTEMS)).split(",") if s]
    holder: list[Any] = []

    def encoder() -> Any:
        if not holder:
            from parley.nlu.adapters.encoder import TransformerEncoder  # noqa: PLC0415

            holder.append(TransformerEncoder(device="cpu"))
        return holder[0]

    rows: list[dict[str, object]] = []
    for name in wanted:
        rows += await asyncio.to_thread(run_dataset, name, LOADERS[name], systems, encoder)
    return rows
