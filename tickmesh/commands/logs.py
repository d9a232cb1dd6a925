"""show the last lines of process NAME's log (a child, forwarder, supervisor); -f follows it

    tickmesh logs NAME [-n N] [-f] [--config CONFIG]

Reads NAME.log in the log dir of the running system (its system.json in the run dir), or of
CONFIG's, and the rotated NAME.log.1 ... when NAME.log has fewer than N lines; -f goes on
printing what is written, across rotations, until interrupted. JSON lines are shown pretty on
a terminal. Exit 2 if NAME has no log there (the names that have one are listed), 1 if there
is no running system or it writes no log files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from tickmesh.runtime.logs import PrettyLines
from tickmesh.supervisor import logfiles
from tickmesh.system import EXIT_NO_SUPERVISOR, EXIT_USAGE, die, find

POLL_SECONDS = 0.1
READ_SIZE = 1 << 16


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a child's name, forwarder or supervisor")
    parser.add_argument("-n", "--lines", type=_count, default=20, metavar="N",
                        help="how many of the last lines to show (20)")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="then go on showing each line written, until interrupted")
    parser.add_argument("--config", help="the system's config (default: the one running in "
                        "the run dir)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    directory = _log_dir(find(args.config))
    file = _open(directory, args.name)
    current = _whole_lines(file.read())
    file.seek(sum(len(line) + 1 for line in current))
    show = _printer()
    try:
        for line in last_lines(directory, args.name, current, args.lines):
            show(line)
        if args.follow:
            for line in follow(file, directory, args.name):
                show(line)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        sys.stderr.close()


def _open(directory: Path, name: str) -> BinaryIO:
    """Process `name`'s current log file; exit 2 naming those that have one if it has none."""
    try:
        return logfiles.path(directory, name).open("rb")
    except FileNotFoundError:
        known = ", ".join(logfiles.names(directory)) or "none yet"
        die(f"no log of {name!r} in {directory} (logs there: {known})", EXIT_USAGE)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return int(text)


def _log_dir(system: dict) -> Path:
    if not system.get("log_dir"):
        die(f"the system of {system['config']} writes no log files ([supervisor] log_dir is "
            "empty)", EXIT_NO_SUPERVISOR)
    return Path(system["log_dir"])


def _printer() -> Callable[[bytes], None]:
    """Prints a line on stdout (a JSON log line pretty, on a terminal)."""
    pretty = PrettyLines() if sys.stdout.isatty() else None
    out = sys.stdout.buffer

    def show(line: bytes) -> None:
        out.write((pretty(line) if pretty else line) + b"\n")
        out.flush()

    return show


def last_lines(directory: Path, name: str, current: list[bytes], count: int) -> list[bytes]:
    """The last `count` lines of process `name`'s log, whose current file holds `current`
    (the rotated files are read too, if it has fewer)."""
    lines = current
    index = 1
    while len(lines) < count and logfiles.rotated(directory, name, index).exists():
        lines = _whole_lines(logfiles.rotated(directory, name, index).read_bytes()) + lines
        index += 1
    return lines[len(lines) - count:] if count else []


def _whole_lines(data: bytes) -> list[bytes]:
    """The lines of `data`, without the last if it has no newline yet (being written)."""
    return data.split(b"\n")[:-1]


def follow(file: BinaryIO, directory: Path, name: str) -> Iterator[bytes]:
    """Every whole line written to `file`, process `name`'s log file, from where it is read on,
    forever; once it is rotated, the rest of it, then the file written after it, and so on
    (however many rotations came meanwhile, as long as the files are kept)."""
    pending = b""
    while True:
        chunk = file.read(READ_SIZE)
        if chunk:
            *lines, pending = (pending + chunk).split(b"\n")
            yield from lines
        elif _inode(file) != _inode_at(logfiles.path(directory, name)):
            *lines, pending = (pending + file.read()).split(b"\n")  # before the rotation
            yield from lines
            newer = _written_after(file, directory, name)
            if newer is None:
                time.sleep(POLL_SECONDS)
            else:
                file.close()
                file, pending = newer, b""
        else:
            time.sleep(POLL_SECONDS)


def _written_after(file: BinaryIO, directory: Path, name: str) -> BinaryIO | None:
    """The log file written after `file`, which was rotated: the one rotated just after it,
    else the current one; None if that is not there (in the midst of a rotation)."""
    newer = logfiles.path(directory, name)
    index = 1
    while (older := logfiles.rotated(directory, name, index)).exists():
        if _inode_at(older) == _inode(file):
            break
        newer, index = older, index + 1
    else:
        newer = logfiles.path(directory, name)  # it is gone: on with the current one
    try:
        return newer.open("rb")
    except FileNotFoundError:
        return None


def _inode(file: BinaryIO) -> int:
    return os.fstat(file.fileno()).st_ino


def _inode_at(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
