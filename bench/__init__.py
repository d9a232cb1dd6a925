"""Benchmarks: tickmesh's handlers and consumers against the providers' own SDKs and a peer
library, side by side in one run.

`make bench` runs `python -m bench` (bench/__main__.py); results go to bench/results.json.
"""
