"""The two-line scenario of `make bench` (issue 19): what a second bus line costs the publisher
and the consumer, per event, against one line in the same run.

Two forwarder processes (runtime.forwarder: line A's and line B's) run for the whole scenario.
Per run, one line then two (two then one in every other run, so that neither side always goes
first): a consumer process (the Subscriber SDK on both lines' subscribe endpoints, or line A's)
and a publisher process (our Publisher on both lines' publish endpoints, or line A's); once the
publisher's warm-up trades come through every line, it publishes TRADES trades over 100 symbols
as fast as it can (bench.line_ends; every queue on the way holds a blast of this size, so none
is lost), and the consumer counts them, checking every symbol's sequence numbers are contiguous
and none is delivered twice. Each process measures its own CPU time (user + system, libzmq's
I/O thread included) over the trades: CPU µs per event.

Figures: the publisher's and the consumer's CPU µs per event with two lines against one line
(ratio: one line's cost over two lines'; target: two lines cost at most 1.3x one line's, a
ratio of at least 1/1.3 = 0.77); the messages lost or delivered twice, over every run and both
line counts (target 0). The details hold the cost ratios the other way up (two lines over one,
`two_over_one`), each side's rate, the forwarders' CPU per event and the arbiter's counts.
"""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from subprocess import Popen

from bench import pipeline
from bench.line_ends import expect, tell
from bench.processes import Processes, wait_for
from bench.report import Scenario, scenario
from tickmesh.bus import sockets
from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.spec import PARENT_ENV, SPEC_ENV, ChildSpec

TRADES = 200_000
RUNS = 3
COST_TARGET = 1.3  # two lines' CPU per event at most this times one line's
LINES = (1, 2)
SIDES = ("publisher", "consumer")


def queue_size(trades: int) -> int:
    """Every queue's high-water mark (publisher, forwarders, consumer): a whole blast and more,
    so that a consumer slower than the publisher loses nothing (what is measured is CPU per
    event, not what a queue holds)."""
    return max(sockets.DEFAULT_HWM, 2 * trades)


def two_line_bus(procs: Processes, trades: int) -> BusConfig:
    run, hwm = procs.run_dir, queue_size(trades)
    return BusConfig(f"ipc://{run}/a-publish", f"ipc://{run}/a-subscribe", hwm=hwm,
                     subscriber_hwm=hwm, publish_b=f"ipc://{run}/b-publish",
                     subscribe_b=f"ipc://{run}/b-subscribe")


def start_forwarders(procs: Processes, bus: BusConfig) -> list[Popen]:
    """Line A's and line B's forwarders, as each line's supervisor would start it."""
    forwarders = []
    for line in bus.lines:
        spec = ChildSpec(f"forwarder-{line.name.lower()}", {}, replace(bus, forwarder=line.name))
        env = {SPEC_ENV: spec.to_json(), PARENT_ENV: str(os.getpid())}
        forwarders.append(procs.start(spec.name, [sys.executable, "-m",
                                                  "tickmesh.runtime.forwarder"], env))
    bound = [Path(end[len("ipc://"):]) for line in bus.lines
             for end in (line.publish, line.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "both forwarders to bind")
    return forwarders


def run(procs: Processes, bus: BusConfig, lines: int, trades: int, forwarders: list[Popen],
        batch: int = 0) -> dict:
    """One line count: the publisher's and the consumer's tallies, the forwarders' CPU."""
    used = bus.lines[:lines]
    ends = {"publish": ",".join(line.publish for line in used),
            "consume": ",".join(line.subscribe for line in used)}
    started: list[Popen] = []

    def start(side: str) -> Popen:
        argv = [sys.executable, "-m", "bench.line_ends", side, ends[side], str(trades),
                "--hwm", str(bus.hwm), *(["--batch", str(batch)] if side == "consume" else [])]
        proc = procs.start(f"{side}-{lines}", argv, talk=True)
        started.append(proc)
        expect(proc, "ready", f"bench.line_ends {side}")
        return proc

    try:
        consumer = start("consume")
        publisher = start("publish")
        expect(consumer, "warm", "bench.line_ends consume")
        forwarders_cpu = sum(pipeline.cpu_seconds(f.pid) for f in forwarders)
        tell(publisher, "go")
        timeout = 60 + trades / 10_000
        consumed = pipeline.last_json(consumer, timeout)
        forwarders_cpu = sum(pipeline.cpu_seconds(f.pid) for f in forwarders) - forwarders_cpu
        tell(publisher, "stop")
        published = pipeline.last_json(publisher, 10)
    finally:
        for proc in started:
            procs.stop(proc)
    wrong = consumed["lost"] + consumed["delivered_twice"]
    if wrong or consumed["gaps"]:
        print(f"lines {lines}: {consumed['lost']:,} trades lost, {consumed['delivered_twice']:,} "
              f"delivered twice, {consumed['gaps']} gaps told", flush=True)
    events = max(consumed["events"], 1)
    return {"publisher": published["cpu_seconds"] / trades * 1e6,
            "consumer": consumed["cpu_seconds"] / events * 1e6,
            "publisher_io": published["io_cpu_seconds"] / trades * 1e6,
            "consumer_io": consumed["io_cpu_seconds"] / events * 1e6,
            "forwarders": forwarders_cpu / events * 1e6,
            "publish_rate": trades / published["seconds"],
            "consume_rate": events / consumed["seconds"] if consumed["seconds"] else 0.0,
            "wrong": wrong, "consumed": consumed}


def measure(trades: int = TRADES, runs: int = RUNS) -> list[Scenario]:
    results: dict[int, list[dict]] = {n: [] for n in LINES}
    with Processes() as procs:
        bus = two_line_bus(procs, trades)
        forwarders = start_forwarders(procs, bus)
        for number in range(1, runs + 1):
            for lines in (LINES if number % 2 else LINES[::-1]):
                results[lines].append(run(procs, bus, lines, trades, forwarders))
            one, two = results[1][-1], results[2][-1]
            print(f"lines run {number}/{runs}: " + ", ".join(
                f"{side} {one[side]:.2f} -> {two[side]:.2f} CPU µs/event "
                f"({two[side] / one[side]:.2f}x)" for side in SIDES)
                + f", consumed {one['consume_rate']:,.0f} -> {two['consume_rate']:,.0f}/s, "
                f"{one['wrong'] + two['wrong']} lost or twice", flush=True)

    def each(lines: int, key: str) -> list[float]:
        return [r[key] for r in results[lines]]

    def median(key: str, digits: int = 2) -> dict[str, float]:
        return {name: round(statistics.median(each(n, key)), digits)
                for name, n in (("one", 1), ("two", 2))}

    def details(side: str) -> dict:
        two_over_one = [t / o if o else 0.0 for o, t in zip(each(1, side), each(2, side))]
        return {
            "two_over_one": round(statistics.median(two_over_one), 3),
            "two_over_one_runs": [round(r, 3) for r in two_over_one],
            "target_two_over_one": COST_TARGET,
            "trades": trades,
            # of the CPU µs per event, libzmq's I/O thread's (the rest: the Python thread's)
            "io_thread_cpu_us_per_event": median(f"{side}_io"),
            "publish_rate": median("publish_rate", 0),
            "consume_rate": median("consume_rate", 0),
            "forwarders_cpu_us_per_event": median("forwarders"),
            "line_duplicates": [r["consumed"]["line_duplicates"] for r in results[2]],
            "line_first": [r["consumed"]["line_first"] for r in results[2]],
        }

    rows = [
        scenario(f"lines-{side}-cpu", f"{side} CPU µs per event on two bus lines (ratio: one "
                 f"line's cost / two lines'; target: two lines at most {COST_TARGET:g}x one "
                 f"line's)", "CPU µs/event", each(2, side), each(1, side), "tickmesh, one line",
                 higher_is_better=False, target=round(1 / COST_TARGET, 2), details=details(side))
        for side in SIDES
    ]
    wrong = [one["wrong"] + two["wrong"] for one, two in zip(results[1], results[2])]
    lost = scenario("lines-lost", "trades lost or delivered twice, one line and two, every run "
                    "(ours: the total)", "events", wrong, None, "", higher_is_better=False,
                    target=0, target_on="ours", details={
                        f"{what}_{name}": sum(r["consumed"][what] for r in results[n])
                        for what in ("lost", "delivered_twice") for name, n in (("one", 1),
                                                                                 ("two", 2))})
    rows.append(replace(lost, ours=float(sum(wrong)), met=sum(wrong) == 0))
    return rows
