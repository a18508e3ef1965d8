"""Percentiles without pulling numpy into the light benchmarks."""

from __future__ import annotations

import statistics


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(benchmark: str, latencies_s: list[float], elapsed_s: float) -> list[dict[str, object]]:
    """p50/p99 latency in ms and throughput per second."""
    return [
        {
            "benchmark": benchmark,
            "metric": "p50 latency",
            "value": round(percentile(latencies_s, 50) * 1000, 1),
            "unit": "ms",
        },
        {
            "benchmark": benchmark,
            "metric": "p99 latency",
            "value": round(percentile(latencies_s, 99) * 1000, 1),
            "unit": "ms",
        },
        {
            "benchmark": benchmark,
            "metric": "mean latency",
            "value": round(statistics.fmean(latencies_s) * 1000, 1),
            "unit": "ms",
        },
        {
            "benchmark": benchmark,
            "metric": "throughput",
            "value": round(len(latencies_s) / elapsed_s, 1),
            "unit": "turns/s",
        },
    ]
