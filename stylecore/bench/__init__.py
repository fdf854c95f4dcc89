"""The benchmarks behind `python -m stylecore bench`."""
