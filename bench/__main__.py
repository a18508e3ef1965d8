"""Run every benchmark and print a Markdown table; raw figures go to .local/bench/results.json.

python -m bench              # all
python -m bench turns-embedded turns-kafka nlu
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.context import bench_context
from bench.generator import bench_generator, bench_generator_templates
from bench.nlu import bench_nlu
from bench.nlu_datasets import bench_nlu_datasets
from bench.sentiment import bench_sentiment
from bench.turns import bench_turns_embedded, bench_turns_kafka
from parley.core.logging import configure_logging
from parley.core.settings import LogSettings

BENCHMARKS = {
    "context": bench_context,
    "generator": bench_generator,
    "generator-templates": bench_generator_templates,
    "nlu": bench_nlu,
    "nlu-datasets": bench_nlu_datasets,
    "sentiment": bench_sentiment,
    "turns-embedded": bench_turns_embedded,
    "turns-kafka": bench_turns_kafka,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--turns", type=int, default=200, help="turns per turn benchmark")
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent conversations")
    args = parser.parse_args()
    configure_logging(LogSettings(level="WARNING"), service="bench")
    results: list[dict[str, object]] = []
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    for name in args.names or BENCHMARKS:
        print(f"== {name}", file=sys.stderr, flush=True)
        results.extend(asyncio.run(BENCHMARKS[name](turns=args.turns, concurrency=args.concurrency)))
    machine = f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
    out = Path(".local/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({"when": datetime.now(UTC).isoformat(), "machine": machine, "results": results}, indent=2)
    )
    print(f"\nmachine: {machine}\n")
    print("| benchmark | metric | value | unit |\n|---|---|---|---|")
    for row in results:
        print(f"| {row['benchmark']} | {row['metric']} | {row['value']} | {row['unit']} |")
    return 0


def _cores() -> int:
    import os  # noqa: PLC0415

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
