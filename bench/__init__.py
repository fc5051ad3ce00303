"""Benchmarks: figures and ratios against a baseline measured in the same run (not part of the test run).

Run them with ``python -m bench.run`` (see bench/README.md)."""
