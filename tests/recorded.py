"""Helpers for the recorder's tests: run a recorder and a publisher on a test bus, and read what
was recorded while it is being written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable

import msgpack

from tickmesh.bus.sockets import BusConfig
from tickmesh.consumers.recorder.recording import MESSAGE, Record, Recording, RecordingError
from tests.waiting import wait_until


def records(directory: Path) -> list[Record]:
    """Every readable record so far ([] while there is no segment yet)."""
    try:
        return list(Recording(directory).records())
    except RecordingError:
        return []


def prices(directory: Path, symbol: str = "DATA") -> list[tuple[int, float]]:
    """(seq, price) of the recorded trades of the test publisher's `symbol`."""
    topic = f"trade.test.{symbol}|".encode()
    out = []
    for record in records(directory):
        if record.type == MESSAGE and record.topic == topic:
            event = msgpack.unpackb(record.data)
            out.append((event["q"], event["px"]))
    return out


def start_recorder(spawn_child: Callable, directory: Path, bus: BusConfig | None = None,
                   **settings) -> subprocess.Popen:
    return spawn_child("tickmesh.consumers.recorder", "recorder",
                       {"directory": str(directory), **settings}, bus=bus)


def start_publisher(spawn: Callable, endpoint: str, count: int, rate: int) -> subprocess.Popen:
    """tests.bus_publisher: WARM trades until told to go, then `count` DATA trades."""
    return spawn([sys.executable, "-m", "tests.bus_publisher", endpoint, "DATA", str(count),
                  str(rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def wait_recording(directory: Path) -> None:
    """Until the recorder has written a WARM trade: it is subscribed and writing."""
    wait_until(lambda: prices(directory, "WARM"), timeout=15, what="the recorder to record")


def go(publisher: subprocess.Popen) -> None:
    publisher.stdin.write("go\n")
    publisher.stdin.flush()


def record_run(spawn: Callable, spawn_child: Callable, publish: str, directory: Path,
               count: int, rate: int = 20_000, **settings) -> None:
    """Record `count` DATA trades (and whatever else is on the bus) to the end marker."""
    recorder = start_recorder(spawn_child, directory, **settings)
    publisher = start_publisher(spawn, publish, count, rate)
    wait_recording(directory)
    go(publisher)
    assert publisher.stdout.readline().strip() == f"done {count}"
    wait_until(lambda: any(price < 0 for _, price in prices(directory)), timeout=15,
               what="the end marker to be recorded")
    go(publisher)
    publisher.wait(timeout=10)
    wait_until(lambda: any(r.topic.startswith(b"heartbeat.") for r in records(directory)),
               timeout=15, what="a heartbeat (one a second) recorded too")
    recorder.terminate()
    assert recorder.wait(timeout=10) == 0
