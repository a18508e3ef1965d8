"""NLU parse latency (one utterance) and batched throughput on the example project's model."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from bench.stats import percentile

PROJECT = Path("examples/order-support").resolve()
UTTERANCES = [
    "Hello, I need help with my order",
    "My order number is 12345",
    "When will it arrive?",
    "where is my package",
    "thanks, bye",
    "can you check the status of order 55512",
]


async def bench_nlu(turns: int, concurrency: int) -> list[dict[str, object]]:
    """Median and p99 of single parses, and utterances/s in batches of 32."""
    from parley.nlu.app import build_nlu  # noqa: PLC0415
    from parley.nlu.settings import NluSettings  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="parley-bench-nlu-") as tmp:
        started = time.perf_counter()
        service = await asyncio.to_thread(build_nlu, NluSettings(model_dir=Path(tmp)))
        cold = time.perf_counter() - started
        parser = service.parser
        for text in UTTERANCES:  # warm-up
            parser.parse(text)
        single: list[float] = []
        for i in tqdm(range(max(200, turns)), desc="nlu single", unit="parse"):
            t0 = time.perf_counter()
            parser.parse(UTTERANCES[i % len(UTTERANCES)])
            single.append(time.perf_counter() - t0)
        batch = [UTTERANCES[i % len(UTTERANCES)] for i in range(32)]
        t0 = time.perf_counter()
        rounds = 20
        for _ in tqdm(range(rounds), desc="nlu batched", unit="batch"):
            parser.parse_batch(batch)
        batched = rounds * len(batch) / (time.perf_counter() - t0)
    return [
        {"benchmark": "nlu", "metric": "first start incl. training", "value": round(cold, 2), "unit": "s"},
        {
            "benchmark": "nlu",
            "metric": "parse p50 (1 utterance)",
            "value": round(percentile(single, 50) * 1000, 2),
            "unit": "ms",
        },
        {
            "benchmark": "nlu",
            "metric": "parse p99 (1 utterance)",
            "value": round(percentile(single, 99) * 1000, 2),
            "unit": "ms",
        },
        {
            "benchmark": "nlu",
            "metric": "batched throughput (32)",
            "value": round(batched, 1),
            "unit": "utterances/s",
        },
    ]
