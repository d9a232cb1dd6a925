"""A child that starts a process when it is imported (a mistake: its work belongs in main()):
`sleep 100003`, started with subprocess.Popen and forgotten. It appends one JSON line
{"importer": its own pid, "sleeper": the sleeper's pid, "since": the sleeper's start time
(tests.supervised.start_time)} to the file named by TICKMESH_TEST_RECORD (at import there are
no settings yet), then imports like any other module."""

from __future__ import annotations

import json
import os
import signal
import subprocess

from tests.supervised import start_time

RECORD_ENV = "TICKMESH_TEST_RECORD"
SLEEPER = ["sleep", "100003"]


def start_sleeper() -> None:
    record = os.environ[RECORD_ENV]
    sleeper = subprocess.Popen(SLEEPER).pid
    line = json.dumps({"importer": os.getpid(), "sleeper": sleeper, "since": start_time(sleeper)})
    fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\n").encode())  # one write: a reader never sees half a line
    os.close(fd)


start_sleeper()


def main() -> None:
    while True:
        signal.pause()
