"""The recorder with real processes: a complete recording of a run, rotated segments, crash
safety under SIGKILL, a full disk survived."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tickmesh.bus import Alert, Subscriber
from tickmesh.consumers.recorder.recording import GAP, OUTAGE, Recording
from tests.recorded import (go, prices, record_run, records, start_publisher, start_recorder,
                            wait_recording)
from tests.waiting import wait_until

COUNT = 5000


def test_a_run_is_recorded_whole_in_rotated_segments(spawn, spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT, segment_bytes=64 * 1024)
    data = [(seq, price) for seq, price in prices(directory) if price >= 0]
    assert data == [(i + 1, float(i)) for i in range(COUNT)]
    recording = Recording(directory)
    assert len(recording.segments) >= 2  # rotated by size (checked at each flush)
    assert all(segment.parent.name.count("-") == 2 for segment in recording.segments)  # days
    assert not [r for r in recording.records() if r.type == GAP]
    assert recording.skipped == []
    kinds = {r.topic.split(b".")[0] for r in records(directory)}
    assert {b"trade", b"heartbeat"} <= kinds  # everything on the bus by default


def test_sigkill_loses_only_the_last_batch_and_the_torn_tail_is_skipped(
        spawn, spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    recorder = start_recorder(spawn_child, directory, flush_ms=50)
    publisher = start_publisher(spawn, forwarder.publish, 200_000, 20_000)
    wait_recording(directory)
    go(publisher)
    wait_until(lambda: len(prices(directory)) >= 3000, timeout=15, what="3000 trades recorded")
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait(timeout=5)
    recorded = prices(directory)
    assert [seq for seq, _ in recorded] == list(range(1, len(recorded) + 1))
    assert Recording(directory).skipped == []

    last = Recording(directory).segments[-1]
    with last.open("r+b") as segment:  # a write cut short: half of the last record
        segment.truncate(last.stat().st_size - 7)
    recording = Recording(directory)
    after = [(q, p) for q, p in prices(directory)]
    assert after == recorded[:len(after)] and len(after) >= len(recorded) - 1
    list(recording.records())
    assert len(recording.skipped) == 1 and "torn tail" in recording.skipped[0]


@pytest.fixture
def tiny_disk(run_dir: Path):
    """A 1 MiB tmpfs (root only): the recorder's disk, to fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill needs root; the full-disk path is untested")
    mount = run_dir / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_said_survived_and_recording_resumes(spawn, spawn_child, forwarder,
                                                            tiny_disk):
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 700 * 1024)
    directory = tiny_disk / "rec"
    alerts = Subscriber(forwarder.subscribe, ["alert.recorder"])
    recorder = start_recorder(spawn_child, directory, retry_s=0.2)
    publisher = start_publisher(spawn, forwarder.publish, 30_000, 20_000)  # ~4 MB
    wait_recording(directory)
    go(publisher)

    raised = wait_until(lambda: alerts.recv(timeout=0.05), timeout=20, what="an alert")
    assert isinstance(raised, Alert) and raised.state == "raised"
    assert raised.what == "recording_failed" and "No space left" in raised.message
    assert publisher.stdout.readline().strip() == "done 30000"
    go(publisher)  # it stops
    publisher.wait(timeout=10)
    filler.unlink()
    cleared = wait_until(lambda: alerts.recv(timeout=0.05), timeout=20, what="the alert cleared")
    assert cleared.state == "cleared" and "events lost" in cleared.message
    assert recorder.poll() is None
    assert [r for r in records(directory) if r.type == OUTAGE]
    before = len(records(directory))
    wait_until(lambda: len(records(directory)) > before, timeout=10,
               what="recording to go on (heartbeats)")
    assert Recording(directory).skipped == []  # what was written before is intact
    alerts.close()
