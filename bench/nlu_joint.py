"""The fine-tuned joint model on a benchmark: train, save (ONNX), evaluate through the serving runtime.

``train_and_eval(train, test, config)`` is what the dataset benchmarks call; ``python -m bench.nlu_joint``
runs one quick sanity check on a CLINC150 subset (``--train 1000 --test 1000``), or a whole data set
with any training settings (a GPU, say)::

    .venv/bin/python -m bench.nlu_joint --train 1000 --test 1000 --oos 200 --epochs 8
    .venv/bin/python -m bench.nlu_joint --dataset snips --epochs 3 --config '{"device": "cuda"}'

Examples are duck-typed (``.text``, ``.intents``, ``.entities`` of spans with ``.start .end .type``);
an example whose intents are empty or equal ``config["oos_label"]`` is out of scope.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.stats import percentile
from parley.nlu.model.codec import Prediction
from parley.nlu.model.config import JointConfig
from parley.nlu.model.data import Example, ExampleLike, Span
from parley.nlu.model.runtime import JointPredictor

BATCH = 32


def _plain(examples: Sequence[ExampleLike], oos_label: str | None) -> list[Example]:
    out = []
    for e in examples:
        intents = tuple(i for i in e.intents if i != oos_label)
        spans = tuple(Span(s.start, s.end, s.type) for s in e.entities)
        out.append(Example(e.text, intents, spans))
    return out


def _joint_config(config: JointConfig | Mapping[str, Any] | None) -> tuple[JointConfig, dict[str, Any]]:
    """The JointConfig and the benchmark options of ``config`` (a JointConfig, or a mapping of options
    whose ``joint`` entry is a JointConfig or a mapping of JointConfig fields)."""
    if config is None:
        return JointConfig(), {}
    if isinstance(config, JointConfig):
        return config, {}
    options = dict(config)
    joint = options.get("joint")
    base = joint if isinstance(joint, JointConfig) else JointConfig.from_dict(dict(joint or {}))
    if options.get("multi_label") is not None and base.multi_label is None:
        base = base.replace(multi_label=bool(options["multi_label"]))
    return base, options


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _intent_metrics(gold: list[Example], predicted: list[Prediction], multi_label: bool) -> dict[str, float]:
    in_scope = [i for i, g in enumerate(gold) if g.intents]
    oos = [i for i, g in enumerate(gold) if not g.intents]
    out: dict[str, float] = {}
    labels = sorted({i for g in gold for i in g.intents})
    if multi_label:
        sets = [frozenset(k for k, v in p.intent_probs.items() if v >= 0.5) for p in predicted]
        counts = {label: [0, 0, 0] for label in labels}
        for g, s in zip(gold, sets, strict=True):
            for label in labels:
                hit, want = label in s, label in g.intents
                counts[label][0] += hit and want
                counts[label][1] += hit and not want
                counts[label][2] += want and not hit
        out["macro_f1"] = float(np.mean([_f1(*c)[2] for c in counts.values()])) if counts else 0.0
        totals = np.sum(list(counts.values()), axis=0) if counts else [0, 0, 0]
        out["micro_f1"] = _f1(*(int(x) for x in totals))[2]
        out["exact_set_accuracy"] = float(
            np.mean([s == frozenset(g.intents) for g, s in zip(gold, sets, strict=True)])
        )
        top = [next(iter(p.intent_probs)) for p in predicted]
        out["accuracy"] = float(np.mean([top[i] in gold[i].intents for i in in_scope])) if in_scope else 0.0
    else:
        top = [next(iter(p.intent_probs)) for p in predicted]
        out["accuracy"] = (
            float(np.mean([top[i] == gold[i].intents[0] for i in in_scope])) if in_scope else 0.0
        )
        counts = {label: [0, 0, 0] for label in labels}
        for i in in_scope:
            want, got = gold[i].intents[0], top[i]
            if got == want:
                counts[want][0] += 1
            else:
                counts[want][2] += 1
                if got in counts:
                    counts[got][1] += 1
        out["macro_f1"] = float(np.mean([_f1(*c)[2] for c in counts.values()])) if counts else 0.0
    if oos:
        decided = [p.intent for p in predicted]  # None: out of scope
        out["in_scope_accuracy_with_threshold"] = float(
            np.mean([decided[i] is not None and decided[i] in gold[i].intents for i in in_scope])
        )
        flagged = [d is None for d in decided]
        tp = sum(flagged[i] for i in oos)
        fp = sum(flagged[i] for i in in_scope)
        precision, recall, f1 = _f1(tp, fp, len(oos) - tp)
        out.update(oos_precision=precision, oos_recall=recall, oos_f1=f1)
        right = [
            (decided[i] is None) if not gold[i].intents else (decided[i] in gold[i].intents)
            for i in range(len(gold))
        ]
        out["accuracy_with_oos"] = float(np.mean(right))
    confidence = np.array([max(predicted[i].intent_probs.values()) for i in in_scope])
    correct = np.array([next(iter(predicted[i].intent_probs)) in gold[i].intents for i in in_scope])
    if len(confidence):
        from parley.nlu.model.train import expected_calibration_error  # noqa: PLC0415 - torch, once trained

        out["ece"] = expected_calibration_error(confidence, correct)
    return out


def _slot_metrics(gold: list[Example], predicted: list[Prediction]) -> dict[str, float]:
    """Micro precision/recall/F1 of exact (start, end, type) spans, as seqeval scores BIO entities."""
    tp = fp = fn = 0
    for g, p in zip(gold, predicted, strict=True):
        want = Counter((s.start, s.end, s.type) for s in g.entities)
        got = Counter((t.start, t.end, t.type) for t in p.tags)
        hit = sum((want & got).values())
        tp, fp, fn = tp + hit, fp + sum(got.values()) - hit, fn + sum(want.values()) - hit
    precision, recall, f1 = _f1(tp, fp, fn)
    return {"slot_precision": precision, "slot_recall": recall, "slot_f1": f1}


def _latency(predict: Any, texts: list[str], rounds: int) -> dict[str, float]:
    predict(texts[:2])  # warm-up
    single = []
    for i in range(rounds):
        started = time.perf_counter()
        predict([texts[i % len(texts)]])
        single.append(time.perf_counter() - started)
    batch_texts = [texts[i % len(texts)] for i in range(BATCH * 10)]
    started = time.perf_counter()
    for i in range(0, len(batch_texts), BATCH):
        predict(batch_texts[i : i + BATCH])
    elapsed = time.perf_counter() - started
    return {
        "latency_p50_ms": percentile(single, 50) * 1000,
        "latency_p99_ms": percentile(single, 99) * 1000,
        "throughput_batched_per_s": len(batch_texts) / elapsed,
    }


def train_and_eval(
    train_examples: Sequence[ExampleLike],
    test_examples: Sequence[ExampleLike],
    config: JointConfig | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on ``train_examples``, save with the store (ONNX, int8 if kept), score ``test_examples``
    through :class:`JointPredictor`, and time single and batched parses.

    ``config``: a :class:`JointConfig`, or a mapping with any of ``joint`` (JointConfig or its fields),
    ``oos_label``, ``val_examples`` (validation split; else one is held out of train), ``multi_label``,
    ``model_dir`` (kept; else a temporary folder), ``latency_rounds`` (default 200), ``compare_runtimes``
    (also time torch eager and both ONNX precisions; default True), ``progress`` (default True).
    """
    from parley.nlu.model.store import JointModelStore  # noqa: PLC0415
    from parley.nlu.model.train import train_joint  # noqa: PLC0415 - torch and transformers

    joint, options = _joint_config(config)
    oos_label = options.get("oos_label")
    train = _plain(train_examples, oos_label)
    test = _plain(test_examples, oos_label)
    validation = options.get("val_examples")
    started = time.perf_counter()
    trained = train_joint(
        train,
        joint,
        progress=bool(options.get("progress", True)),
        validation_examples=_plain(validation, oos_label) if validation else None,
    )
    train_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="parley-bench-joint-") as tmp:
        root = Path(options.get("model_dir") or tmp)
        started = time.perf_counter()
        info = JointModelStore(root).save(trained, project=str(options.get("dataset", "bench")))
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        predictor = JointPredictor.load(info.path)
        load_s = time.perf_counter() - started
        predicted = predictor.predict([e.text for e in test])
        texts = [e.text for e in test] or ["hello"]
        rounds = int(options.get("latency_rounds", 200))
        result: dict[str, Any] = {
            "dataset": options.get("dataset", ""),
            "train_examples": len(train),
            "test_examples": len(test),
            "intents": len(trained.intents),
            "multi_label": trained.multi_label,
            "precision": predictor.precision,
            "train_s": round(train_s, 2),
            "save_s": round(save_s, 2),
            "load_s": round(load_s, 3),
            "temperature": trained.temperature,
            "oos_threshold": trained.oos_threshold,
            **_intent_metrics(test, predicted, trained.multi_label),
            **_latency(predictor.predict, texts, rounds),
            "training_metrics": trained.metrics,
            "export_metrics": {k: v for k, v in info.metadata["metrics"].items() if k not in trained.metrics},
        }
        if any(e.entities for e in test):
            result.update(_slot_metrics(test, predicted))
        if options.get("compare_runtimes", True):
            runtimes = {"torch_eager": _latency(trained.predict, texts, rounds)}
            for precision in ("fp32", "int8"):
                if precision == "fp32" or (info.path / "model.int8.onnx").is_file():
                    runtime = JointPredictor.load(info.path, precision=precision)
                    runtimes[f"onnx_{precision}"] = _latency(runtime.predict, texts, rounds)
                    scored = runtime.predict([e.text for e in test])
                    runtimes[f"onnx_{precision}"].update(_intent_metrics(test, scored, trained.multi_label))
            result["runtimes"] = runtimes
    return result


def _clinc_subset(path: Path, n_train: int, n_test: int, n_oos: int, seed: int) -> tuple[list[Example], ...]:
    data = json.loads(path.read_text())
    rng = random.Random(seed)

    def sample(split: str, n: int, oos: bool = False) -> list[Example]:
        rows = data[split][:]
        rng.shuffle(rows)
        return [Example(text, () if oos else (label,)) for text, label in rows[:n]]

    train = sample("train", n_train) + sample("oos_train", n_oos // 2, oos=True)
    val = sample("val", max(150, n_train // 5)) + sample("oos_val", n_oos // 2, oos=True)
    test = sample("test", n_test) + sample("oos_test", n_oos, oos=True)
    return train, val, test


def _dataset_run(name: str, overrides: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Train and score on a whole benchmark data set (as ``python -m bench nlu-datasets`` does)."""
    from bench.datasets import LOADERS  # noqa: PLC0415

    if name not in LOADERS:
        raise SystemExit(f"unknown dataset {name!r}; choose one of {', '.join(LOADERS)}")
    ds = LOADERS[name]()
    oos = ds.oos_label
    train = [Example(e.text, (), e.entities) if e.intents == (oos,) else e for e in ds.train]
    config = {
        "dataset": ds.name,
        "oos_label": oos,
        "val_examples": list(ds.val) or None,
        "multi_label": ds.multi_label,
        "joint": overrides,
        "latency_rounds": rounds,
    }
    return train_and_eval(train, list(ds.test), config)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clinc", type=Path, default=Path("../shared/datasets/clinc150/data/data_full.json"))
    parser.add_argument(
        "--dataset", help="a whole benchmark data set (clinc150, banking77, snips, ...) instead of the subset"
    )
    parser.add_argument(
        "--config", default="{}", help='JointConfig fields as JSON, e.g. \'{"device": "cuda", "epochs": 5}\''
    )
    parser.add_argument("--out", type=Path, help="also write the metrics as JSON to this file")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--oos", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    overrides = {"epochs": args.epochs, "num_threads": args.threads, **json.loads(args.config)}
    if args.dataset:
        result = _dataset_run(args.dataset, overrides, args.rounds)
    else:
        train, val, test = _clinc_subset(args.clinc, args.train, args.test, args.oos, seed=13)
        config = {
            "dataset": f"clinc150-subset-{args.train}",
            "val_examples": val,
            "joint": overrides,
            "latency_rounds": args.rounds,
        }
        result = train_and_eval(train, test, config)
    text = json.dumps(result, indent=2, default=float)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
