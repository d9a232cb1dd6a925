"""The symbol-scale scenario of `make bench`: the handler's cost per event with 10, 1,000 and
10,000 subscribed symbols (the handler's subscription lists every symbol by name, so that its
subscription set, the publisher's per-topic state and the forwarder's subscription trie all
hold them): per-topic state must not make an event dearer.

Per run and symbol count K: bench.feed blasts FRAMES pre-built frames of 10 trades spread evenly
over K symbols (its plan for K) through our handler and the forwarder to bench.counter in
another process, which reads the handler's CPU time from its first trade to its last. Figures:
the handler's CPU seconds per million trades at 1,000 and 10,000 symbols against 10 symbols in
the same run (target at 10,000: at most 1.2x the cost at 10, i.e. a ratio of at least 0.83),
and the delivered rate.
"""

from __future__ import annotations

import sys

from bench import pipeline
from bench.feed import symbol_names
from bench.processes import Processes
from bench.report import Scenario, scenario

COUNTS = (10, 1_000, 10_000)
FRAMES = 50_000
PER_FRAME = 10
RUNS = 3
COST_TARGET = 1 / 1.2


def run(procs: Processes, port: int, symbols: int, frames: int) -> dict:
    expected = frames * PER_FRAME
    counter = procs.start("counter", [sys.executable, "-m", "bench.counter", procs.bus.subscribe,
                                      str(expected)], talk=True)
    handler = None
    try:
        if counter.stdout.readline().strip() != "ready":
            raise RuntimeError("bench.counter did not start")
        handler = pipeline.start_handler(procs, port, f"k{symbols}", symbol_names(symbols))
        counter.stdin.write(f"{handler.pid}\n")
        counter.stdin.flush()
        tally = pipeline.last_json(counter, 60 + expected / 10_000)
    finally:
        for proc in (handler, counter):
            if proc is not None:
                procs.stop(proc)
    if tally["events"] < expected:
        print(f"symbols {symbols}: the counter missed {expected - tally['events']:,} trades",
              flush=True)
    return {"cpu": tally["cpu_seconds"] / tally["events"] * 1e6,
            "rate": tally["events"] / tally["seconds"]}


def measure(frames: int = FRAMES, runs: int = RUNS) -> list[Scenario]:
    plans = {f"k{k}": {"symbols": k, "phases": [{"pause": 0.3},
                                                 {"blast": [1, frames, PER_FRAME]}]}
             for k in COUNTS}
    results: dict[int, list[dict]] = {k: [] for k in COUNTS}
    with Processes() as procs:
        pipeline.start_forwarder(procs)
        _feed, port = pipeline.start_feed(procs, plans)
        for number in range(1, runs + 1):
            for k in COUNTS:
                results[k].append(run(procs, port, k, frames))
            print(f"symbols run {number}/{runs}: " + ", ".join(
                f"{k:,} symbols {results[k][-1]['cpu']:.2f} CPU s/M, "
                f"{results[k][-1]['rate']:,.0f}/s" for k in COUNTS), flush=True)

    def each(k: int, key: str) -> list[float]:
        return [r[key] for r in results[k]]

    base = f"tickmesh, {COUNTS[0]} symbols"
    rows = []
    for k in COUNTS[1:]:
        rows += [
            scenario(f"symbols-{k}-cpu", f"handler CPU seconds per million trades, {k:,} "
                     f"subscribed symbols (ratio: the cost at {COUNTS[0]} / this)",
                     "CPU s/M events", each(k, "cpu"), each(COUNTS[0], "cpu"), base,
                     higher_is_better=False,
                     target=round(COST_TARGET, 2) if k == COUNTS[-1] else None),
            scenario(f"symbols-{k}-rate", f"trades delivered per second, {k:,} subscribed "
                     "symbols", "events/s", each(k, "rate"), each(COUNTS[0], "rate"), base,
                     higher_is_better=True, target=None),
        ]
    return rows
