"""`tickmesh replay`: publish a recording back onto a bus, with its original pacing or faster.

    tickmesh replay PATH [--speed 1|10|max] [--filter PATTERN]... [--from TIME] [--to TIME]
                         [--run-dir DIR] [--wait] [--live [--config CONFIG]]

Each recorded message is sent as its two recorded frames, byte for byte (Publisher
.publish_raw): the original topics, providers, symbols, sequence numbers and epochs. By default
the replay runs a bus of its own (a forwarder in a run dir of its own, with a system.json, so
that `TICKMESH_RUN_DIR=DIR tickmesh tail ...` finds it) and never mixes with a live system's
topics; `--live` (the running system, or the one of `--config`) is the explicit choice to
replay onto a live bus. Replay is marked by its own `status` events on `status.replay.|`:
"connected" (what is replayed, at what speed) before the first event and "disconnected" (how
many were sent) after the last. TIME is an ISO 8601 time (UTC unless it says otherwise) or
nanoseconds since the epoch, compared with each record's receive time. Damaged records are
skipped (consumers.recorder.recording): each damaged place (file, byte offset, bytes,
records) and their total are said on stderr, and the total in the "disconnected" status. Exit 2: PATH is missing
or not a recording.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import zmq

from tickmesh.bus import events, topics
from tickmesh.bus.publisher import Publisher
from tickmesh.bus.sockets import BusConfig
from tickmesh.consumers.recorder.recording import MESSAGE, Record, Recording, RecordingError
from tickmesh.runtime.spec import PARENT_ENV, SPEC_ENV, ChildSpec

EXIT_USAGE = 2
REPLAY_SOURCE = "replay"
FORWARDER_WAIT_S = 10.0
DRAIN_LINGER_MS = 5000  # at the end, queued events get this long to leave
LINGER_S = 1.0  # without --wait, how long the own bus stays up after the last event
SYSTEM_FILE = "system.json"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from digits, or from an ISO 8601 time (naive: UTC)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ISO 8601, or ns since the "
                                         "epoch)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def parse_speed(text: str) -> float:
    """A positive factor, or "max" (inf: no pacing)."""
    if text == "max":
        return float("inf")
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"--speed: a number > 0 or max, not {text!r}")
    return speed


def parse_pattern(text: str) -> topics.Pattern:
    try:
        return topics.Pattern.parse(text)
    except topics.TopicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def selected(recording: Recording, patterns: list[topics.Pattern], start: int | None,
             end: int | None) -> Iterator[Record]:
    """The recorded messages to replay, in order."""
    for record in recording.records():
        if record.type != MESSAGE or (start is not None and record.recv_ns < start):
            continue
        if end is not None and record.recv_ns > end:
            break
        if patterns and not any(_matches(p, record.topic) for p in patterns):
            continue
        yield record


def _matches(pattern: topics.Pattern, topic: bytes) -> bool:
    try:
        return pattern.matches(topic)
    except (ValueError, UnicodeDecodeError):
        return False


def replay(records: Iterator[Record], publisher: Publisher, speed: float) -> int:
    """Publish `records` with their recorded pacing divided by `speed`; how many were sent."""
    sent, first_ns, start = 0, None, time.monotonic()
    send = publisher.publish_raw
    for record in records:
        if speed != float("inf"):
            if first_ns is None:
                first_ns = record.recv_ns
            delay = start + (record.recv_ns - first_ns) / 1e9 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        send(record.topic, record.data)
        sent += 1
    return sent


def announce(publisher: Publisher, state: str, message: str) -> None:
    now = time.time_ns()
    publisher.publish(events.Status(provider=REPLAY_SOURCE, ts_event=now, ts_recv=now,
                                    state=state, message=message))


class OwnBus:
    """A forwarder in a run dir of the replay's own, and a system.json pointing at it."""

    def __init__(self, run_dir: str | None) -> None:
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="tickmesh-replay-", dir="/tmp"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.bus = BusConfig(f"ipc://{self.run_dir}/publish", f"ipc://{self.run_dir}/subscribe")
        spec = ChildSpec("forwarder", {}, self.bus)
        env = dict(os.environ, **{SPEC_ENV: spec.to_json(), PARENT_ENV: str(os.getpid())})
        with open(self.run_dir / "forwarder.log", "ab") as log:
            self.forwarder = subprocess.Popen([sys.executable, "-m", "tickmesh.bus.forwarder"], env=env,
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._wait_bound()
        (self.run_dir / SYSTEM_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "config": None, "control": None, "bus": self.bus.to_dict()}))

    def _wait_bound(self) -> None:
        paths = [Path(end[len("ipc://"):]) for end in (self.bus.publish, self.bus.subscribe)]
        deadline = time.monotonic() + FORWARDER_WAIT_S
        while not all(path.exists() for path in paths):
            if self.forwarder.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit(f"tickmesh: the replay's forwarder did not start (see "
                                 f"{self.run_dir}/forwarder.log)")
            time.sleep(0.01)

    def close(self) -> None:
        (self.run_dir / SYSTEM_FILE).unlink(missing_ok=True)
        self.forwarder.terminate()
        try:
            self.forwarder.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.forwarder.kill()
            self.forwarder.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickmesh replay", description="publish a recording "
                                     "onto a bus of its own (or, with --live, a running one)")
    parser.add_argument("path", help="a recording directory or segment file")
    parser.add_argument("--speed", type=parse_speed, default=1.0, help="1, 10, ... or max (1)")
    parser.add_argument("--filter", type=parse_pattern, action="append", default=[],
                        metavar="PATTERN", help="only topics matching (repeatable)")
    parser.add_argument("--from", dest="start", type=parse_time, metavar="TIME")
    parser.add_argument("--to", dest="end", type=parse_time, metavar="TIME")
    parser.add_argument("--run-dir", help="the own bus's run dir (default: a new one in /tmp)")
    parser.add_argument("--wait", action="store_true", help="wait for a line on stdin before "
                        "replaying, and for another (or its end) before taking the bus down")
    parser.add_argument("--publish", help="a live bus's publish endpoint (tickmesh passes it "
                        "for --live)")
    return parser


def cli(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        recording = Recording(Path(args.path))
    except RecordingError as exc:
        print(f"tickmesh: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    own = None if args.publish else OwnBus(args.run_dir)
    try:
        _run(args, recording, args.publish or own.bus.publish, own)
    finally:
        if own is not None:
            own.close()


def _run(args: argparse.Namespace, recording: Recording, endpoint: str,
         own: OwnBus | None) -> None:
    if own is not None:
        print(f"replay: a bus of its own: subscribe at {own.bus.subscribe} "
              f"(TICKMESH_RUN_DIR={own.run_dir} tickmesh tail PATTERN)", file=sys.stderr)
    publisher = Publisher(endpoint, ready_timeout=FORWARDER_WAIT_S)
    if args.wait:
        sys.stdin.readline()
    speed = "max" if args.speed == float("inf") else f"{args.speed:g}"
    announce(publisher, "connected", f"replaying {recording.path} at speed {speed}")
    start = time.monotonic()
    sent = replay(selected(recording, args.filter, args.start, args.end), publisher, args.speed)
    seconds = time.monotonic() - start
    damaged = f" ({recording.summary()})" if recording.damage else ""
    announce(publisher, "disconnected", f"replay finished: {sent} events{damaged}")
    publisher.close(linger_ms=DRAIN_LINGER_MS)
    zmq.Context.instance().term()  # returns once the queued events have left (or the linger)
    print(f"replay: {sent} events in {seconds:.3f} s ({sent / max(seconds, 1e-9):,.0f} events/s)",
          file=sys.stderr)
    for problem in recording.skipped:
        print(f"replay: skipped: {problem}", file=sys.stderr)
    if recording.damage:
        print(f"replay: {recording.summary()}", file=sys.stderr)
    if own is not None:
        if args.wait:
            sys.stdin.readline()
        else:
            time.sleep(LINGER_S)
