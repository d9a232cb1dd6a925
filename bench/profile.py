"""Where the time goes: py-spy samples of our Alpaca handler and of a Subscriber SDK consumer
while scenario 1's load (a blast of frames of 10 trades over 100 symbols, bench.feed) goes
through them, summed by what each sample was doing (the innermost frame of ours, or of the
library it is in) into a breakdown per event, in % of the process's busy samples and in µs of
its CPU per trade.

usage: python -m bench.profile [--frames N] [--rate HZ] [--keep DIR] [--symbols K]
Needs py-spy (the bench extra) and ptrace rights over child processes (root, or
kernel.yama.ptrace_scope 0). --keep DIR: also leave the raw collapsed stacks there.
"""

from __future__ import annotations

import argparse
import linecache
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench import pipeline
from bench.feed import symbol_names
from bench.processes import REPO, Processes

FRAMES = 100_000
PER_FRAME = 10
RATE_HZ = 250
TICKS = os.sysconf("SC_CLK_TCK")
PLAN = "profile"

# (the frame's file ends with, its source line or function contains, the bucket), first match
# from the innermost frame outwards
HANDLER_RULES = [
    ("bus/publisher.py", "send(", "publish: two zmq sends"),
    ("bus/publisher.py", "_encode_into", "publish: msgspec encode"),
    ("bus/publisher.py", "", "publish: topic, sequence, epoch"),
    ("handlers/alpaca/wire.py", "", "normalize: timestamp (time_to_ns)"),
    ("handlers/alpaca/protocol.py", "_decoder.decode", "msgspec decode (frame)"),
    ("handlers/alpaca/protocol.py", "Trade(", "normalize: Trade construction"),
    ("handlers/alpaca/protocol.py", "", "normalize: the loop, checks"),
    ("runtime/metrics.py", "", "metrics (latency histogram, counters)"),
    ("runtime/process.py", "", "heartbeat and runtime duties"),
    ("handlers/common/client.py", "await recv", "WebSocket receive, event loop"),
    ("handlers/common/client.py", "latency(", "metrics (latency histogram, counters)"),
    ("handlers/common/client.py", "", "client pump (per frame)"),
    ("handlers/common/websocket.py", "", "WebSocket receive, event loop"),
    ("websockets/", "", "WebSocket receive, event loop"),
    ("asyncio/", "", "WebSocket receive, event loop"),
    ("uvloop/", "", "WebSocket receive, event loop"),
    ("zmq/", "", "publish: two zmq sends"),
]
CONSUMER_RULES = [
    ("bus/subscriber.py", "recv()", "zmq receive (two frames)"),
    ("bus/subscriber.py", "recv(0, False)", "zmq receive (two frames)"),
    ("bus/subscriber.py", "events.decode(", "msgspec decode (event)"),
    ("bus/subscriber.py", "getsockopt", "zmq RCVMORE check"),
    ("bus/events.py", "", "msgspec decode (event)"),
    ("bus/subscriber.py", "_topic_of", "topic check (event vs topic)"),
    ("bus/subscriber.py", "def _topic_of", "topic check (event vs topic)"),
    ("bus/subscriber.py", "return f\"", "topic check (event vs topic)"),
    ("bus/subscriber.py", "tracker.check", "gap tracking"),
    ("bus/subscriber.py", "def check", "gap tracking"),
    ("bus/subscriber.py", "self._last", "gap tracking"),
    ("bus/subscriber.py", "previous", "gap tracking"),
    ("bus/subscriber.py", "", "Subscriber SDK per-message logic"),
    ("zmq/", "", "zmq receive (two frames)"),
    ("bench/probe.py", "", "the loop's own body (n += 1)"),
]
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def categorize(stacks: Path, rules: list[tuple[str, str, str]]) -> Counter:
    """Samples per bucket, from py-spy's raw (collapsed) output."""
    buckets: Counter = Counter()
    for row in stacks.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        bucket = None
        for match in reversed([m for m in frames if m]):
            file = match["file"]
            source = linecache.getline(_resolve(file), int(match["line"])) + match["func"]
            for suffix, text, name in rules:
                if suffix in file and text in source:
                    bucket = name
                    break
            if bucket:
                break
        if bucket is None:
            leaf = next((m for m in reversed(frames) if m), None)
            bucket = f"other: {leaf['func'] if leaf else stack.split(';')[-1]}"
        buckets[bucket] += int(count)
    return buckets


def _resolve(file: str) -> str:
    path = Path(file)
    return str(path if path.is_absolute() else REPO / path)


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        sys.exit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(procs: Processes, pid: int, out: Path, seconds: float,
           rate: int) -> subprocess.Popen:
    """py-spy sampling `pid` for `seconds` into `out` (collapsed stacks), one of `procs`."""
    return procs.start(f"py-spy-{pid}", [py_spy(), "record", "-p", str(pid), "-o", str(out),
                                         "-f", "raw", "-r", str(rate),
                                         "-d", str(max(1, round(seconds)))])


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process's main thread, and of all its other threads (libzmq's I/O
    thread, which py-spy does not sample: it runs no Python)."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICKS
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def show(title: str, buckets: Counter, python_us: float, other_us: float) -> None:
    """The buckets as % of the Python thread's busy samples, and µs of its CPU a trade."""
    total = sum(buckets.values()) or 1
    print(f"{title}: {python_us + other_us:.2f} µs of CPU a trade: the Python thread "
          f"{python_us:.2f} ({total} busy samples), other threads (libzmq I/O) {other_us:.2f}")
    for name, count in buckets.most_common():
        share = count / total
        if share >= 0.005:
            print(f"  {share:6.1%}  {share * python_us:5.2f} µs  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--rate", type=int, default=RATE_HZ)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--symbols", type=int, default=0,
                        help="trades over this many symbols, each subscribed by name (as "
                             "scenario 6 does); default: scenario 1's 100, subscribed by '*'")
    args = parser.parse_args()
    py_spy()
    plan = {"symbols": args.symbols or 100,
            "phases": [{"pause": 1.5}, {"blast": [0, args.frames, PER_FRAME]}]}
    trades = args.frames * PER_FRAME
    with Processes() as procs:
        pipeline.start_forwarder(procs)
        _feed, port = pipeline.start_feed(procs, {PLAN: plan})
        probe = pipeline.start_probe(procs, "probe", procs.bus.subscribe, "--idle", "2",
                                     "--drain")
        watch = pipeline.StatusWatch(procs)
        handler = pipeline.start_handler(procs, port, PLAN,
                                         symbol_names(args.symbols) if args.symbols else None)
        watch.wait("subscribed")
        watch.close()
        seconds = 1.5 + trades / 60_000
        out = {name: procs.run_dir / f"{name}.txt" for name in ("handler", "consumer")}
        spies = [record(procs, handler.pid, out["handler"], seconds, args.rate),
                 record(procs, probe.pid, out["consumer"], seconds + 2, args.rate)]
        pids = {"handler": handler.pid, "consumer": probe.pid}
        start = {name: thread_cpu(pid) for name, pid in pids.items()}
        spies[0].wait()
        handler_cpu = [b - a for a, b in zip(start["handler"], thread_cpu(handler.pid))]
        spies[1].wait()
        consumer_cpu = [b - a for a, b in zip(start["consumer"], thread_cpu(probe.pid))]
        received = pipeline.last_json(probe, 120)["events"]
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in out.values():
                shutil.copy(path, args.keep / path.name)
        print(f"{received:,} of {trades:,} trades reached the consumer")
        show("handler", categorize(out["handler"], HANDLER_RULES),
             *(seconds / trades * 1e6 for seconds in handler_cpu))
        show("consumer (Subscriber SDK, `while sub.recv(timeout): n += 1`)",
             categorize(out["consumer"], CONSUMER_RULES),
             *(seconds / max(received, 1) * 1e6 for seconds in consumer_cpu))


if __name__ == "__main__":
    main()
