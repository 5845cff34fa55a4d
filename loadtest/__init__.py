"""Load generation and the benchmark: `make bench` (bench.py), its baselines and pull client."""
