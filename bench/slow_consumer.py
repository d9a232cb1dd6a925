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
after are in the record's details. Both figures twice: with the bus's default queues
(`[bus] subscriber_hwm`, the forwarder's send queue to each subscriber, and `receive_hwm`, the
slow consumer's own receive queue), and with SMALL_QUEUES in the forwarder too: what a slow
consumer costs in memory is what those two queues hold (~400 bytes a message), and a small
queue in the forwarder gives up some of the bursts a fast consumer rides out when its process
waits for a core (the counter may then miss trades of the blast; each miss is printed).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from bench import pipeline
from bench.processes import Processes
from bench.report import Scenario, scenario
from tickmesh.bus.sockets import DEFAULT_RECEIVE_HWM, DEFAULT_SUBSCRIBER_HWM

FRAMES = 100_000
PER_FRAME = 10
SYMBOLS = 100
SLEEP_MS = 10
PAUSE_S = 2.0
RUNS = 3
RATE_TARGET = 0.95
RSS_TARGET_MB = 20.0
PLAN = "slow"
SMALL_QUEUES = 10_000
"""The second configuration's [bus] subscriber_hwm (the default is DEFAULT_SUBSCRIBER_HWM); the
slow consumer's receive queue is [bus] receive_hwm's default (DEFAULT_RECEIVE_HWM) in both."""


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
                                         "--sleep-ms", str(SLEEP_MS),
                                         "--rcvhwm", str(procs.bus.receive_hwm))
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


def sides(frames: int, runs: int, subscriber_hwm: int) -> tuple[list[dict], list[dict]]:
    """`runs` runs of both sides (without the slow consumer, with it) on a bus whose queues to
    each subscriber hold `subscriber_hwm` messages."""
    plan = {"symbols": SYMBOLS, "phases": [{"pause": PAUSE_S}, {"blast": [1, frames, PER_FRAME]}]}
    without: list[dict] = []
    with_slow: list[dict] = []
    with Processes() as procs:
        procs.bus = replace(procs.bus, subscriber_hwm=subscriber_hwm)
        forwarder = pipeline.start_forwarder(procs)
        feed, port = pipeline.start_feed(procs, {PLAN: plan})
        fixed = {"forwarder": forwarder.pid, "feed": feed.pid}
        for number in range(1, runs + 1):
            without.append(run(procs, port, fixed, frames, slow=False))
            with_slow.append(run(procs, port, fixed, frames, slow=True))
            print(f"slow consumer, subscriber_hwm {subscriber_hwm:,}, run {number}/{runs}: "
                  f"without {without[-1]['rate']:,.0f}/s, RSS +{without[-1]['growth']:.1f} MB | "
                  f"with {with_slow[-1]['rate']:,.0f}/s, RSS +{with_slow[-1]['growth']:.1f} MB "
                  f"({with_slow[-1]['rss']})", flush=True)
    return without, with_slow


def measure(frames: int = FRAMES, runs: int = RUNS) -> list[Scenario]:
    figures = []
    for suffix, hwm in (("", DEFAULT_SUBSCRIBER_HWM), ("-small-queues", SMALL_QUEUES)):
        without, with_slow = sides(frames, runs, hwm)
        setting = f"[bus] subscriber_hwm = {hwm:,}, receive_hwm = {DEFAULT_RECEIVE_HWM:,}"
        base = f"tickmesh without the slow consumer ({setting})"
        figures += [
            scenario(f"slow-consumer-rate{suffix}", f"trades/s delivered to the counter with a "
                     f"consumer sleeping {SLEEP_MS} ms a message beside it, {setting}",
                     "events/s", [r["rate"] for r in with_slow], [r["rate"] for r in without],
                     base, higher_is_better=True, target=RATE_TARGET),
            scenario(f"slow-consumer-rss{suffix}", "RSS growth over the blast, all processes "
                     f"summed, with the slow consumer, {setting}", "MB",
                     [r["growth"] for r in with_slow], [r["growth"] for r in without], base,
                     higher_is_better=False, target=RSS_TARGET_MB, target_on="ours",
                     details={"rss_mb_before_after": {"with": with_slow[-1]["rss"],
                                                      "without": without[-1]["rss"]}}),
        ]
    return figures
