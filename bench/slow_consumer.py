"""The slow-consumer scenario of `make bench`: the handler's full rate (scenario 1's: a blast of
frames of 10 trades over 100 symbols, through our handler and the forwarder to bench.counter in
another process) with and without one more consumer that sleeps SLEEP_MS per message
(bench.probe --sleep-ms, the Subscriber SDK on every trade), which soon lags behind by the
whole of its queues: the forwarder must drop its messages (at the high-water mark) and nobody
else may notice.

Per run, the two sides take turns on one bench.feed: its plan waits PAUSE_S after the handler
subscribes (the RSS of every process is read then: "before"), blasts, and the RSS is read
again once bench.counter has had every trade ("after"). Figures: the rate with the slow consumer
against the rate without it in the same run (target: at least 0.95), and the growth of RSS
summed over every process (forwarder, feed, handler, counter, the slow consumer; a process
that shrank counts 0: the forwarder gives back a previous run's queue late) with the slow
consumer, against the growth without it (target: at most 20 MB); each process's before and
after are in the record's details.
"""

from __future__ import annotations

import sys

from bench import pipeline
from bench.processes import Processes
from bench.report import Scenario, scenario

FRAMES = 100_000
PER_FRAME = 10
SYMBOLS = 100
SLEEP_MS = 10
PAUSE_S = 2.0
RUNS = 3
RATE_TARGET = 0.95
RSS_TARGET_MB = 20.0
PLAN = "slow"


def run(procs: Processes, port: int, fixed: dict[str, int], frames: int, slow: bool) -> dict:
    """One side: its rate, and each process's RSS before and after, in MB."""
    expected = frames * PER_FRAME
    started = []
    watch = pipeline.StatusWatch(procs)
    try:
        counter = procs.start("counter", [sys.executable, "-m", "bench.counter",
                                          procs.bus.subscribe, str(expected)], talk=True)
        started.append(counter)
        if counter.stdout.readline().strip() != "ready":
            raise RuntimeError("bench.counter did not start")
        pids = dict(fixed, counter=counter.pid)
        if slow:
            probe = pipeline.start_probe(procs, "slow", procs.bus.subscribe,
                                         "--sleep-ms", str(SLEEP_MS))
            started.append(probe)
            pids["slow consumer"] = probe.pid
        handler = pipeline.start_handler(procs, port, PLAN)
        started.append(handler)
        pids["handler"] = handler.pid
        counter.stdin.write(f"{handler.pid}\n")
        counter.stdin.flush()
        watch.wait("subscribed")
        before = {name: pipeline.rss_mb(pid) for name, pid in pids.items()}
        tally = pipeline.last_json(counter, 60 + expected / 10_000)
        after = {name: pipeline.rss_mb(pid) for name, pid in pids.items() if name != "counter"}
        after["counter"] = tally.get("rss_mb", 0.0) or before["counter"]
    finally:
        watch.close()
        for proc in reversed(started):
            procs.stop(proc)
    if tally["events"] < expected:
        print(f"slow consumer: the counter missed {expected - tally['events']:,} trades",
              flush=True)
    rss = {name: [round(before[name], 1), round(after[name], 1)] for name in before}
    return {"rate": tally["events"] / tally["seconds"], "rss": rss,
            "growth": sum(max(0.0, b - a) for a, b in rss.values())}


def measure(frames: int = FRAMES, runs: int = RUNS) -> list[Scenario]:
    plan = {"symbols": SYMBOLS, "phases": [{"pause": PAUSE_S}, {"blast": [1, frames, PER_FRAME]}]}
    without: list[dict] = []
    with_slow: list[dict] = []
    with Processes() as procs:
        forwarder = pipeline.start_forwarder(procs)
        feed, port = pipeline.start_feed(procs, {PLAN: plan})
        fixed = {"forwarder": forwarder.pid, "feed": feed.pid}
        for number in range(1, runs + 1):
            without.append(run(procs, port, fixed, frames, slow=False))
            with_slow.append(run(procs, port, fixed, frames, slow=True))
            print(f"slow consumer run {number}/{runs}: without {without[-1]['rate']:,.0f}/s, "
                  f"RSS +{without[-1]['growth']:.1f} MB | with {with_slow[-1]['rate']:,.0f}/s, "
                  f"RSS +{with_slow[-1]['growth']:.1f} MB ({with_slow[-1]['rss']})", flush=True)
    base = "tickmesh without the slow consumer"
    return [
        scenario("slow-consumer-rate", f"trades/s delivered to the counter with a consumer "
                 f"sleeping {SLEEP_MS} ms a message beside it", "events/s",
                 [r["rate"] for r in with_slow], [r["rate"] for r in without], base,
                 higher_is_better=True, target=RATE_TARGET),
        scenario("slow-consumer-rss", "RSS growth over the blast, all processes summed, with "
                 "the slow consumer", "MB", [r["growth"] for r in with_slow],
                 [r["growth"] for r in without], base, higher_is_better=False,
                 target=RSS_TARGET_MB, target_on="ours",
                 details={"rss_mb_before_after": {"with": with_slow[-1]["rss"],
                                                  "without": without[-1]["rss"]}}),
    ]
