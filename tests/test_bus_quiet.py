"""A subscriber that hears nothing from any publisher for a few seconds after connecting (every
running system has a forwarder and a supervisor heartbeating every second) logs once, on the
"tickmesh.bus" logger, that no system seems to be at its endpoint, naming it; one that hears
the forwarder says nothing. Told to a reader blocked in its loop too."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from tickmesh.bus import Subscriber
from tickmesh.bus import intake
from tests.waiting import wait_until

SHORT = 0.3  # seconds of silence before the warning, in these tests


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records
            if record.name == "tickmesh.bus" and "no system seems to be" in record.getMessage()]


def read_until(sub: Subscriber, deadline: float) -> None:
    """Read (and drop) what comes, until the monotonic clock reaches `deadline`."""
    while time.monotonic() < deadline:
        sub.recv(timeout=0.05)


def test_nothing_heard_at_the_endpoint_is_logged_once_naming_it(run_dir, caplog, monkeypatch):
    monkeypatch.setattr(intake, "NO_SYSTEM_AFTER", SHORT)
    endpoint = f"ipc://{run_dir}/subscribe"
    with caplog.at_level(logging.WARNING, logger="tickmesh.bus"), \
            Subscriber(endpoint, ["trade"]) as sub:
        wait_until(lambda: sub.recv(timeout=0.05) is None and warnings(caplog),
                   what="the warning")
        read_until(sub, time.monotonic() + 3 * SHORT)
    [record] = warnings(caplog)
    assert record.levelno == logging.WARNING and endpoint in record.getMessage()


def test_a_subscriber_that_hears_the_forwarder_logs_nothing(forwarder, caplog, monkeypatch):
    monkeypatch.setattr(intake, "NO_SYSTEM_AFTER", 2.5)  # the forwarder beats every 1 s
    with caplog.at_level(logging.WARNING, logger="tickmesh.bus"), \
            Subscriber(forwarder.subscribe, ["trade"]) as sub:
        connected = time.monotonic()
        wait_until(lambda: sub.recv(timeout=0.05) is None and len(sub.watch),
                   what="the forwarder's heartbeat")
        read_until(sub, connected + 2.5 + 4 * intake.CHECK_EVERY)
    assert warnings(caplog) == []


READERS = {
    "blocking": "for event in Subscriber(ENDPOINT, ['trade']):\n    pass\n",
    "asyncio": "async def read():\n    async for event in AsyncSubscriber(ENDPOINT, ['trade']):\n"
               "        pass\nasyncio.run(read())\n",
}


@pytest.mark.parametrize("reader", READERS)
def test_a_reader_blocked_in_its_loop_is_told_too(spawn, run_dir, reader):
    endpoint = f"ipc://{run_dir}/subscribe"
    script = (f"import asyncio\nfrom tickmesh.bus import AsyncSubscriber, Subscriber, intake\n"
              f"intake.NO_SYSTEM_AFTER = {SHORT}\nENDPOINT = {endpoint!r}\n{READERS[reader]}")
    proc = spawn([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "no system seems to be at" in line and endpoint in line
