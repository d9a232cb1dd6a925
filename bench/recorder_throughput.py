"""The recorder's throughput, and replay's at --speed max, each against the handler
benchmark's full rate (TARGET_RATE events/s, the bar the recorder must keep up with).

Scenarios (a forwarder, the recorder, and a publisher process of trades on 100 symbols):
- recorder-capacity: the recorder is SIGSTOPped while COUNT trades queue up for it (the bus's
  hwm and subscriber_hwm are raised so that none is dropped), then resumed: events written per second, from its
  first to its last record's receive time. What it can write, whatever publishes.
- recorder-live: the recorder runs while the publisher sends COUNT trades at TARGET_RATE (as
  the Alpaca handler does in its benchmark), with the bus's default hwms: events written per
  second, and gaps (must be 0: no GAP record, no event missing), else the rate counts as 0.
- replay-max: `tickmesh replay` of that recording at --speed max onto a bus of its own:
  events published per second.

usage: python -m bench.recorder_throughput [--count N] [--runs K]
       python -m bench.recorder_throughput --publish ENDPOINT COUNT RATE   (the publisher)
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.processes import Processes, wait_for
from bench.report import Scenario, print_table, scenario
from tickmesh.consumers.recorder.recording import GAP, MESSAGE, Recording, RecordingError

COUNT = 300_000
RUNS = 3
LIVE_TARGET = 0.98
"""Live, the publisher paces itself at TARGET_RATE, so what is recorded comes at that rate at
best (a sleep's overshoot shows as 0.1-0.5% less): kept up means every event recorded, no gap
(otherwise the rate counts as 0), at no less than 98% of the pace."""
TARGET_RATE = 250_000
TARGET_NAME = "the handler benchmark's full rate (250k events/s)"
DATA_PREFIX = b"trade.bench."


def publish(endpoint: str, count: int, rate: float) -> None:
    """The publisher process: `count` trades over 100 symbols at `rate` a second (0: as fast
    as it can); every one is delivered to the forwarder before it says "done"."""
    import zmq

    from tickmesh.bus import Publisher, Trade

    publisher = Publisher(endpoint)
    now = time.time_ns()
    trades = [Trade(provider="bench", symbol=f"S{i}", ts_event=now, ts_recv=now, price=1.0,
                    size=1.0) for i in range(100)]
    start = time.monotonic()
    for i in range(count):
        publisher.publish(trades[i % 100])
        if rate and i % 1000 == 999 and (ahead := start + i / rate - time.monotonic()) > 0:
            time.sleep(ahead)
    publisher.close(linger_ms=30_000)
    zmq.Context.instance().term()  # waits until the queued trades have left
    print("done", flush=True)


def tally(directory: Path) -> tuple[int, int, float]:
    """(data events recorded, GAP records, events per second from first to last)."""
    try:
        records = [r for r in Recording(directory).records() if r.topic.startswith(DATA_PREFIX)]
    except RecordingError:
        return 0, 0, 0.0
    data = [r.recv_ns for r in records if r.type == MESSAGE]
    gaps = sum(1 for r in records if r.type == GAP)
    span = (data[-1] - data[0]) / 1e9 if len(data) > 1 else 0.0
    return len(data), gaps, len(data) / span if span else 0.0


def run_publisher(procs: Processes, count: int, rate: float = 0) -> subprocess.Popen:
    return procs.start("publisher", [sys.executable, "-m", "bench.recorder_throughput",
                                     "--publish", procs.bus.publish, str(count), str(rate)],
                       talk=True)


def wait_recorded(directory: Path, count: int) -> tuple[int, int, float]:
    """Until `count` events are recorded, or the count stops growing for 3 s."""
    last, since = -1, time.monotonic()
    while True:
        result = tally(directory)
        if result[0] >= count or (result[0] == last and time.monotonic() - since > 3):
            return result
        if result[0] != last:
            last, since = result[0], time.monotonic()
        time.sleep(0.5)


def scenario_capacity(count: int) -> float:
    """Events the recorder writes a second from a queue of `count`."""
    with Processes() as procs:
        procs.bus = replace(procs.bus, hwm=2 * count, subscriber_hwm=2 * count)
        directory = procs.run_dir / "capacity"
        recorder = start(procs, directory, count)
        os.kill(recorder.pid, signal.SIGSTOP)
        publisher = run_publisher(procs, count)
        publisher.stdout.readline()
        os.kill(recorder.pid, signal.SIGCONT)
        recorded, gaps, rate = wait_recorded(directory, count)
    print(f"recorder-capacity: {recorded:,}/{count:,} recorded, {gaps} gaps, {rate:,.0f}/s")
    return rate


def scenario_live(count: int) -> tuple[float, Path, Processes]:
    """Events written a second, live at TARGET_RATE (0 if any was missed); the recording's
    directory and the Processes holding it (to be closed by the caller)."""
    procs = Processes()
    directory = procs.run_dir / "live"
    start(procs, directory, count)
    publisher = run_publisher(procs, count, TARGET_RATE)
    publisher.stdout.readline()
    recorded, gaps, rate = wait_recorded(directory, count)
    print(f"recorder-live: {recorded:,}/{count:,} recorded, {gaps} gaps, {rate:,.0f}/s")
    if gaps or recorded < count:
        print(f"recorder-live: NOT kept up: {count - recorded:,} missing, {gaps} gaps")
    return rate if not gaps and recorded == count else 0.0, directory, procs


def start(procs: Processes, directory: Path, count: int) -> subprocess.Popen:
    procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    recorder = procs.child("tickmesh.consumers.recorder", "recorder",
                           {"directory": str(directory), "rcvhwm": 2 * count})
    wait_for(lambda: tally_any(directory), "the recorder to write", timeout=15)
    return recorder


def tally_any(directory: Path) -> bool:
    """Whether the recorder has written anything (its first heartbeat, within a second)."""
    return any(directory.rglob("*.tmrec"))


def scenario_replay(directory: Path) -> float:
    """Events `tickmesh replay --speed max` publishes a second."""
    with Processes() as procs:
        result = subprocess.run([sys.executable, "-m", "tickmesh.cli", "replay", str(directory),
                                 "--speed", "max", "--run-dir", str(procs.run_dir / "replay")],
                                capture_output=True, text=True, timeout=300)
    found = re.search(r"replay: (\d+) events in ([\d.]+) s", result.stderr)
    if not found:
        raise RuntimeError(f"replay failed: {result.stderr[-2000:]}")
    rate = int(found[1]) / float(found[2])
    print(f"replay-max: {int(found[1]):,} events in {float(found[2]):.2f} s, {rate:,.0f}/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--publish", nargs=3, metavar=("ENDPOINT", "COUNT", "RATE"))
    args = parser.parse_args()
    if args.publish:
        publish(args.publish[0], int(args.publish[1]), float(args.publish[2]))
        return
    print_table(measure(args.count, args.runs))


def measure(count: int = COUNT, runs: int = RUNS) -> list[Scenario]:
    """The three scenarios' records over `runs` runs (`make bench` runs this with the
    others); the peer of each is the constant TARGET_RATE."""
    capacity, live, replay = [], [], []
    for _run in range(runs):
        capacity.append(scenario_capacity(count))
        rate, directory, procs = scenario_live(count)
        live.append(rate)
        with procs:
            replay.append(scenario_replay(directory))
    target = [TARGET_RATE] * runs
    return [
        scenario("recorder-capacity", "events written per second (queued)", "events/s",
                 capacity, target, TARGET_NAME, higher_is_better=True, target=1.0),
        scenario("recorder-live", "events written per second, live, 0 gaps", "events/s",
                 live, target, TARGET_NAME, higher_is_better=True, target=LIVE_TARGET),
        scenario("replay-max", "events replayed per second at --speed max", "events/s",
                 replay, target, TARGET_NAME, higher_is_better=True, target=1.0),
    ]


if __name__ == "__main__":
    main()
