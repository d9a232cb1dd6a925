"""The fan-out scenario of `make bench`: 1, 4 and 16 consumers, each filtering a different 10
of 1,000 symbols, on one handler: neither the handler's rate nor any consumer's latency may
degrade as consumers are added.

Per run and consumer count N: the forwarder, bench.feed, our Alpaca handler (all symbols) and N
bench.probe processes (the Subscriber SDK on ten `trade.alpaca.SYMBOL` patterns each, so the
forwarder's prefix filtering sends each only its 1%). The feed's plan, over 1,000 symbols:
- 10,000 trades/s in frames of 10 for SECONDS: each consumer's end-to-end latency (feed send to
  consumer receive; bench.latency says how), p50 and p99, the worst consumer's;
- then a blast of FRAMES pre-built frames of 10 trades, as fast as the handler takes them: the
  handler's rate is all the blast's trades over the span from the first to the last arrival at
  any consumer (the consumers' ~1% spread evenly over the blast: bench.feed's symbol order).
Each consumer must receive every trade of its symbols (no gap). Targets: with 16 consumers at
least 0.9 of the rate with one (ratio within each run); the latencies are shown against one
consumer's, without a target. Where the rate goes, in the rate rows' details: the handler's
involuntary context switches over the run (preempted: another process took its core) and the
consumers' voluntary ones, summed (woken: each a message, or a few, arriving).
"""

from __future__ import annotations

from bench import pipeline
from bench.feed import symbol_names
from bench.processes import Processes
from bench.report import Scenario, scenario

SYMBOLS = 1000
PER_CONSUMER = 10
COUNTS = (1, 4, 16)
RATE, PER_FRAME = 10_000, 10
SECONDS = 2.0
FRAMES = 50_000
RUNS = 3
RATE_TARGET = 0.9
PLAN = "fanout"


def plan(seconds: float, frames: int) -> dict:
    return {"symbols": SYMBOLS, "phases": [
        {"pause": 0.3}, {"paced": [1, RATE, PER_FRAME, seconds]}, {"pause": 0.5},
        {"blast": [2, frames, PER_FRAME]}]}


def run(procs: Processes, port: int, consumers: int, seconds: float, frames: int) -> dict:
    """One consumer count: the blast's rate, the worst p50 and p99, lost trades."""
    names = symbol_names(SYMBOLS)
    probes = []
    handler = None
    try:
        for i in range(consumers):
            mine = names[i * PER_CONSUMER:(i + 1) * PER_CONSUMER]
            probes.append(pipeline.start_probe(
                procs, f"probe-{i}", procs.bus.subscribe, "--idle", "1.0",
                "--patterns", ",".join(f"trade.alpaca.{symbol}" for symbol in mine)))
        handler = pipeline.start_handler(procs, port, PLAN)
        timeout = 60 + 3 * seconds + frames * PER_FRAME / 10_000
        results = [pipeline.last_json(probe, timeout) for probe in probes]
        handler_switches = pipeline.switches(handler.pid)
    finally:
        for proc in [handler, *probes]:
            if proc is not None:
                procs.stop(proc)
    paced = [r["phases"].get("1") for r in results]
    blast = [r["phases"].get("2") for r in results]
    share = PER_CONSUMER / SYMBOLS
    expected = round(RATE * seconds * share), round(frames * PER_FRAME * share)
    lost = sum(max(0, expected[0] - (p or {}).get("count", 0))
               + max(0, expected[1] - (b or {}).get("count", 0))
               for p, b in zip(paced, blast)) + sum(r["missed"] for r in results)
    if any(b is None for b in blast):
        raise RuntimeError("a consumer got nothing of the blast")
    span = (max(b["last_recv"] for b in blast) - min(b["first_recv"] for b in blast)) / 1e9
    return {"rate": frames * PER_FRAME / span,
            "p50": max(p["e2e"][0] for p in paced if p), "p99": max(p["e2e"][1] for p in paced
                                                                   if p),
            "lost": lost, "handler_preempted": handler_switches[1],
            "consumers_woken": sum(r["switches"][0] for r in results)}


def measure(seconds: float = SECONDS, frames: int = FRAMES, runs: int = RUNS) -> list[Scenario]:
    results: dict[int, list[dict]] = {n: [] for n in COUNTS}
    with Processes() as procs:
        pipeline.start_forwarder(procs)
        _feed, port = pipeline.start_feed(procs, {PLAN: plan(seconds, frames)})
        for number in range(1, runs + 1):
            for consumers in COUNTS:
                results[consumers].append(run(procs, port, consumers, seconds, frames))
            print(f"fan-out run {number}/{runs}: " + ", ".join(
                f"{n} consumer(s) {results[n][-1]['rate']:,.0f}/s, p50/p99 "
                f"{results[n][-1]['p50']:,.0f}/{results[n][-1]['p99']:,.0f} µs"
                + f", handler preempted {results[n][-1]['handler_preempted']:,}, consumers "
                f"woken {results[n][-1]['consumers_woken']:,}"
                + (f", {results[n][-1]['lost']} lost" if results[n][-1]["lost"] else "")
                for n in COUNTS), flush=True)

    def each(consumers: int, key: str) -> list[float]:
        return [r[key] for r in results[consumers]]

    base = f"tickmesh, 1 consumer ({PER_CONSUMER} of {SYMBOLS} symbols)"
    rows = []
    for consumers in COUNTS[1:]:
        lost = {"lost": each(consumers, "lost"), "lost_one_consumer": each(1, "lost"),
                "handler_preempted": each(consumers, "handler_preempted"),
                "handler_preempted_one_consumer": each(1, "handler_preempted"),
                "consumers_woken": each(consumers, "consumers_woken"),
                "consumers_woken_one_consumer": each(1, "consumers_woken")}
        rows += [
            scenario(f"fanout-{consumers}-rate", f"handler trades/s (a blast over {SYMBOLS} "
                     f"symbols) with {consumers} consumers of {PER_CONSUMER} symbols each",
                     "events/s", each(consumers, "rate"), each(1, "rate"), base,
                     higher_is_better=True,
                     target=RATE_TARGET if consumers == COUNTS[-1] else None, details=lost),
            scenario(f"fanout-{consumers}-p50", f"worst consumer's end-to-end p50 at {RATE:,}/s "
                     f"in frames of {PER_FRAME}, {consumers} consumers", "µs",
                     each(consumers, "p50"), each(1, "p50"), base, higher_is_better=False,
                     target=None),
            scenario(f"fanout-{consumers}-p99", f"worst consumer's end-to-end p99 at {RATE:,}/s "
                     f"in frames of {PER_FRAME}, {consumers} consumers", "µs",
                     each(consumers, "p99"), each(1, "p99"), base, higher_is_better=False,
                     target=None),
        ]
    return rows
