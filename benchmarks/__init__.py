"""Benchmarks: `python -m benchmarks.migration --persons N` (see docs/benchmarks.md)."""
