"""Benchmarks: each script prints a table and writes benchmarks/results/<name>.json."""
