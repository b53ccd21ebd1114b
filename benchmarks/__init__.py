"""Benchmarks: each ``bench_*.py`` module prints tables of figures beside a baseline."""
