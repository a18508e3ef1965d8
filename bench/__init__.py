"""Parley's benchmarks (`make bench`); figures are recorded in docs/benchmarks.md."""
