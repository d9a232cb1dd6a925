"""Where the book scenarios' time goes: our side of bench.binance_books (or, with --kraken,
bench.kraken_books) alone (no peer), run after run, optionally with py-spy sampling the handler
and the order-book builder.

usage: python -m bench.book_profile [--kraken] [--events N] [--runs N] [--spy] [--keep DIR]
(--events: Binance depthUpdates, or with --kraken Kraken book updates, per run)
Prints each run's Measure (updates/s, CPU µs per update, the builder's share); with --spy,
each process's samples summed by the innermost frame of our code (function and file), in % of
its busy samples. Needs py-spy and ptrace rights over child processes, like bench.profile.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bench import binance_books, binance_depth, kraken_books, kraken_depth
from bench.processes import Processes
from bench.profile import py_spy

OURS = ("handlers/", "consumers/", "bus/", "runtime/")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def innermost_ours(stacks: Path) -> Counter:
    """Samples per innermost frame of our code ("func (file)"), else per leaf frame."""
    buckets: Counter = Counter()
    for row in stacks.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        frames = [m for m in map(_FRAME.match, stack.split(";")) if m]
        ours = [m for m in frames if any(part in m["file"] for part in OURS)]
        chosen = ours[-1] if ours else (frames[-1] if frames else None)
        name = f"{chosen['func']} ({chosen['file'].split('site-packages/')[-1]})" \
            if chosen else stack.split(";")[-1]
        buckets[name] += int(count)
    return buckets


def show(title: str, buckets: Counter, limit: int = 25) -> None:
    total = sum(buckets.values()) or 1
    print(f"{title}: {total} samples")
    for name, count in buckets.most_common(limit):
        print(f"  {count / total:6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kraken", action="store_true", help="the Kraken book scenario")
    parser.add_argument("--events", type=int)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--spy", action="store_true")
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    if args.kraken:
        scenario = kraken_books
        recording = kraken_depth.recording(kraken_books.PAIRS, args.events or kraken_books.UPDATES)
        truth = kraken_depth.truth(recording)
    else:
        scenario = binance_books  # type: ignore[assignment]
        recording = binance_depth.recording(binance_books.SYMBOLS,
                                            args.events or binance_books.EVENTS)
        truth = binance_depth.truth(recording)
    with Processes() as procs:
        port = scenario.start_bus_and_simulator(procs, recording, truth["symbols"])
        spies: list[tuple[str, subprocess.Popen, Path]] = []
        if args.spy:
            child = procs.child

            def spied(module: str, name: str, settings: dict, env=None) -> subprocess.Popen:
                proc = child(module, name, settings, env)
                out = procs.run_dir / f"{name}-{len(spies)}.txt"
                spy = procs.start(f"py-spy-{name}", [py_spy(), "record", "-p", str(proc.pid),
                                                     "-o", str(out), "-f", "raw",
                                                     "-r", str(args.rate)])
                spies.append((name, spy, out))
                return proc

            procs.child = spied  # type: ignore[method-assign]
        for run in range(1, args.runs + 1):
            measure = scenario.run_ours(procs, port, recording, truth)
            print(f"run {run}/{args.runs}: {measure.describe()}", flush=True)
        for name, spy, out in spies:
            spy.wait(timeout=30)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out, args.keep / out.name)
        for name in sorted({name for name, _, _ in spies}):
            total: Counter = Counter()
            for spy_name, _, out in spies:
                if spy_name == name and out.exists():
                    total += innermost_ours(out)
            show(name, total)


if __name__ == "__main__":
    main()
