"""A child that leaves a process behind: `sleep 100001`, started with subprocess.Popen and
forgotten, or (settings.double_fork) double-forked into a session of its own (setsid), as a
daemon would be. It appends one JSON line {"child": its pid, "sleeper": the sleeper's pid,
"since": the sleeper's start time (tests.supervised.start_time)} to settings.record, then
exits with code 1 if settings.crash (a crash), or else waits for a signal (SIGTERM ends it,
leaving the sleeper). It knows nothing of tickmesh but its spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from tickmesh.runtime.spec import child_spec
from tests.supervised import start_time

SLEEPER = ["sleep", "100001"]


@dataclass(frozen=True)
class Settings:
    record: str
    double_fork: bool = False
    crash: bool = False


def double_fork(argv: list[str]) -> int:
    """Run `argv` as a grandchild in a new session, whose parent exits at once; its pid."""
    read, write = os.pipe()
    if os.fork() == 0:  # the intermediate: a new session, a child, gone
        try:
            os.setsid()
            pid = os.fork()
            if pid == 0:
                os.execvp(argv[0], argv)
            os.write(write, str(pid).encode())
        finally:
            os._exit(0)
    os.close(write)
    pid = int(os.read(read, 32))
    os.close(read)
    os.wait()  # the intermediate
    return pid


def main() -> None:
    settings = child_spec().settings
    if settings.get("double_fork"):
        sleeper = double_fork(SLEEPER)
    else:
        sleeper = subprocess.Popen(SLEEPER).pid
    record = {"child": os.getpid(), "sleeper": sleeper, "since": start_time(sleeper)}
    line = json.dumps(record) + "\n"
    fd = os.open(settings["record"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode())  # one write: a reader never sees half a line
    os.close(fd)
    if settings.get("crash"):
        sys.exit(1)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
