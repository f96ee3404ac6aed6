"""Benchmarks for ordergraph (not tests): see bench/README.md. `python -m bench.run`."""
