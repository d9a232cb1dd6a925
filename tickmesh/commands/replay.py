"""publish a recording onto a bus of its own (--live: the running system's): PATH ...

    tickmesh replay PATH [--speed 1|10|max] [--filter PATTERN]... [--from TIME] [--to TIME]
                         [--run-dir DIR] [--keep-log] [--wait] [--no-wait-subscriber]
                         [--live [--config CONFIG]]

By default the replay runs a bus of its own (a forwarder in a run dir of its own, with a
system.json, so that `TICKMESH_RUN_DIR=DIR tickmesh tail ...` finds it) and never mixes with a
live system's topics; `--live` (the running system, or the one of `--config`) is the explicit
choice to replay onto a live bus. On a terminal (stdin is one), the replay onto its own bus
waits for its first subscriber (`tickmesh tail` in another terminal, say) before its first
event, so that nothing is lost to a late one; `--no-wait-subscriber` starts at once. When it
ends, normally or on Ctrl-C, it takes away what it made in the run dir (system.json, the
sockets, the forwarder's log unless `--keep-log`), and the run dir itself if it made that too.
TIME is an ISO 8601 time (UTC unless it says otherwise) or nanoseconds since the epoch,
compared with each record's receive time. The replay itself, and its `status` events, are
consumers.recorder.playback's; what damage cost is said on stderr.
Exit 2: PATH is missing or not a recording.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tickmesh.bus.sockets import BusConfig
from tickmesh.commands.tail import pattern
from tickmesh.runtime.spec import ChildSpec
from tickmesh.supervisor import launch
from tickmesh.supervisor.config import FORWARDER_MODULE, FORWARDER_NAME, ChildConfig
from tickmesh.bus.endpoints import SYSTEM_FILE
from tickmesh.system import EXIT_USAGE, die, find

if TYPE_CHECKING:
    from tickmesh.consumers.recorder.recording import Recording

FORWARDER = ChildConfig(FORWARDER_NAME, FORWARDER_MODULE)  # as the supervisor has it
EXIT_NO_BUS = 1
LINGER_S = 1.0  # without --wait, how long the own bus stays up after the last event


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a recording directory or segment file")
    parser.add_argument("--speed", type=parse_speed, default=1.0, help="1, 10, ... or max (1)")
    parser.add_argument("--filter", type=pattern, action="append", default=[],
                        metavar="PATTERN", help="only topics matching (repeatable)")
    parser.add_argument("--from", dest="start", type=parse_time, metavar="TIME")
    parser.add_argument("--to", dest="end", type=parse_time, metavar="TIME")
    parser.add_argument("--run-dir", help="the own bus's run dir (default: a new one in /tmp)")
    parser.add_argument("--wait", action="store_true", help="wait for a line on stdin before "
                        "replaying, and for another (or its end) before taking the bus down")
    parser.add_argument("--no-wait-subscriber", dest="subscriber", action="store_false",
                        default=None, help="on a terminal too, do not wait for a subscriber "
                        "before the first event (default there: wait; elsewhere: not)")
    parser.add_argument("--keep-log", action="store_true", help="keep the forwarder's log (and "
                        "so the run dir) after the replay")
    parser.add_argument("--live", action="store_true", help="onto the running system's bus")
    parser.add_argument("--config", help="with --live: that system's config (default: the one "
                        "running in the run dir)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    from tickmesh.consumers.recorder import recording  # loaded by this command alone

    live = BusConfig.from_dict(find(args.config)["bus"]).publish_endpoints if args.live else None
    try:
        source = recording.Recording(args.path)
    except recording.RecordingError as exc:
        die(str(exc), EXIT_USAGE)
    if live:
        _play(args, source, live)
        return
    if args.subscriber is None:
        args.subscriber = sys.stdin.isatty()
    own = OwnBus(args.run_dir)
    try:
        print(f"replay: a bus of its own: subscribe at {own.bus.subscribe} "
              f"(TICKMESH_RUN_DIR={own.run_dir} tickmesh tail PATTERN)", file=sys.stderr)
        if args.subscriber:
            print("replay: waiting for a subscriber (Ctrl-C to give up)", file=sys.stderr)
        _play(args, source, own.bus.publish, args.subscriber)
        if args.wait:
            sys.stdin.readline()
        else:
            time.sleep(LINGER_S)
    except KeyboardInterrupt:  # Ctrl-C: a quiet end, what it made taken away all the same
        sys.exit(130)
    finally:
        own.close(args.keep_log)


def _play(args: argparse.Namespace, source: Recording, endpoint: str | tuple[str, ...],
          subscriber: bool = False) -> None:
    """Replay `source` onto the bus at `endpoint` as the arguments say, and say how it went."""
    from tickmesh.consumers.recorder import playback

    played = playback.play(source, endpoint, args.speed, args.filter, args.start, args.end,
                           go=sys.stdin.readline if args.wait else lambda: None,
                           subscriber=subscriber)
    rate = played.sent / max(played.seconds, 1e-9)
    print(f"replay: {played.sent} events in {played.seconds:.3f} s ({rate:,.0f} events/s)",
          file=sys.stderr)
    for problem in source.problems():
        print(f"replay: {problem}", file=sys.stderr)


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


class OwnBus:
    """A forwarder in a run dir of the replay's own, started as the supervisor starts its own
    (supervisor.launch: the same module and timeouts, under a keeper, so that it dies with the
    replay even one that is SIGKILLed), its output in forwarder.log there, and a system.json
    pointing at it once it is ready."""

    def __init__(self, run_dir: str | None) -> None:
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="tickmesh-replay-", dir="/tmp"))
        self.made_dir = run_dir is None or not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.closed = False
        self.bus = BusConfig(f"ipc://{self.run_dir}/publish", f"ipc://{self.run_dir}/subscribe")
        log = self.run_dir / f"{FORWARDER.name}.log"
        self.keeper, ready, pid, output = launch.start(FORWARDER.run,
                                                       ChildSpec(FORWARDER.name, {}, self.bus))
        os.close(pid)  # its pid is shown nowhere
        self._logging = [_copy(fd, log) for fd in output]
        if not _said_ready(ready, FORWARDER.ready_timeout):
            self.close(keep_log=True)
            die(f"the replay's forwarder did not start (see {log})", EXIT_NO_BUS)
        (self.run_dir / SYSTEM_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "config": None, "control": None, "bus": self.bus.to_dict()}))

    def close(self, keep_log: bool = False) -> None:
        """Stop the forwarder as the supervisor does: SIGTERM, SIGKILL after its
        shutdown_timeout; then take away what the replay made in the run dir (its log unless
        `keep_log`), and the run dir if the replay made it and it is empty then. Once."""
        if self.closed:
            return
        self.closed = True
        (self.run_dir / SYSTEM_FILE).unlink(missing_ok=True)
        self.keeper.send_signal(signal.SIGTERM)
        try:
            self.keeper.wait(timeout=FORWARDER.shutdown_timeout)
        except subprocess.TimeoutExpired:
            launch.kill(self.keeper)
            self.keeper.wait()
        for thread in self._logging:
            thread.join()
        made = [Path(self.bus.publish.removeprefix("ipc://")),
                Path(self.bus.subscribe.removeprefix("ipc://"))]
        if not keep_log:
            made.append(self.run_dir / f"{FORWARDER.name}.log")
        for path in made:
            path.unlink(missing_ok=True)  # libzmq unlinks the sockets, unless killed
        if self.made_dir:
            try:
                self.run_dir.rmdir()
            except OSError:  # something else is in it: not the replay's to take
                pass


def _said_ready(ready: int, timeout: float) -> bool:
    """Whether the child said ready on its readiness pipe `ready` within `timeout` s (not if
    it exited first); closes the descriptor."""
    try:
        readable, _, _ = select.select([ready], [], [], timeout)
        return bool(readable) and bool(os.read(ready, 64))
    finally:
        os.close(ready)


def _copy(fd: int, path: Path) -> threading.Thread:
    """A thread appending what comes on the pipe `fd` to the file at `path` until the pipe is
    closed (each chunk one write: the lines of two pipes do not run together)."""

    def copy() -> None:
        with open(fd, "rb", buffering=0) as pipe, open(path, "ab", buffering=0) as file:
            shutil.copyfileobj(pipe, file)

    thread = threading.Thread(target=copy, name=f"log-{fd}", daemon=True)
    thread.start()
    return thread
