"""Benchmarks: `./dev bench NAME` (see bench/__main__.py). Each prints its figures and the ratio to a baseline
measured in the same run."""
