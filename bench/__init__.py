"""Benchmarks: tickmesh's handlers against the providers' own SDKs, side by side in one run.

`make bench` runs `python -m bench.alpaca_throughput`; results go to bench/results.json.
"""
