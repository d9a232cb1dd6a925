"""A damaged recording costs only the records the damage touches (issue 16): 200 bytes flipped
from byte 1,887 of a 2 MB segment written by the real recorder, then read by the reader,
`tickmesh export`, `tickmesh replay` and the recorder's gap fill. Each reader resynchronizes on
the next record marker and says where (file, byte offset) and how much (bytes, records) it
skipped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import msgpack
import pyarrow.parquet as pq

from tickmesh.bus import Heartbeat, Subscriber
from tickmesh.bus.gapfill import GapFiller
from tickmesh.bus.topics import topic
from tickmesh.consumers.recorder.recording import MESSAGE, Record, Recording, counted
from tests.recorded import record_run, records
from tests.supervised import tickmesh
from tests.waiting import wait_until

COUNT = 20_000
SEGMENT = 2 * 1024 * 1024
FLIPPED = 200
AT = 1887


def flip(path: Path, offset: int, count: int = FLIPPED) -> None:
    """Invert `count` bytes of the file from `offset` (every one of them changes)."""
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def damaged(spawn, spawn_child, forwarder, run_dir: Path, offset: int) -> tuple[Path, list[Record]]:
    """A real recording (its first segment 2 MB) with 200 bytes flipped from `offset` of its
    first segment, and every record it held before."""
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT, segment_bytes=SEGMENT)
    intact = records(directory)
    first = Recording(directory).segments[0]
    assert first.stat().st_size >= SEGMENT
    flip(first, offset)
    return directory, intact


def lost(intact: list[Record], read: list[Record]) -> list[Record]:
    """The records `read` lacks of `intact`: one run of consecutive records, at most three (200
    bytes touch no more records than that), and everything after them read."""
    start = next((i for i, (a, b) in enumerate(zip(intact, read)) if a != b), len(read))
    missing = len(intact) - len(read)
    assert 1 <= missing <= 3, f"{missing} records lost of {len(intact)}"
    assert read[start:] == intact[start + missing:]
    return intact[start:start + missing]


def messages(records_: list[Record], prefix: bytes = b"") -> int:
    return sum(1 for r in records_ if r.type == MESSAGE and r.topic.startswith(prefix))


def test_200_flipped_bytes_cost_only_the_records_they_touch(spawn, spawn_child, forwarder,
                                                            run_dir):
    directory, intact = damaged(spawn, spawn_child, forwarder, run_dir, AT)
    recording = Recording(directory)
    gone = lost(intact, list(recording.records()))
    first = recording.segments[0]
    [damage] = recording.damage
    assert damage.segment == first and damage.why == "corrupt"
    assert damage.offset <= AT and damage.offset + damage.size >= AT + FLIPPED
    assert damage.records == len(gone)
    assert (recording.bytes_skipped, recording.records_skipped) == (damage.size, len(gone))
    where = f"{first}: corrupt at byte {damage.offset}"
    assert [line for line in recording.skipped if line.startswith(where)]

    out = run_dir / "out"
    result = tickmesh(spawn, run_dir, "export", str(directory), "--out", str(out))
    assert result.code == 0, result.err
    assert pq.read_table(out / "trade.parquet").num_rows == \
        messages(intact, b"trade.") - messages(gone, b"trade.")
    assert where in result.err
    assert f"damaged recording: {damage.size} bytes, {counted(len(gone), 'record')} " \
        "skipped in 1 place" in result.err

    result = tickmesh(spawn, run_dir, "replay", str(directory), "--speed", "max", "--run-dir",
                      str(run_dir / "replay"), timeout=40)
    assert result.code == 0, result.err
    sent = int(re.search(r"replay: (\d+) events in", result.err)[1])
    assert sent == messages(intact) - messages(gone)
    assert where in result.err
    assert f"damaged recording: {damage.size} bytes, {counted(len(gone), 'record')} " \
        "skipped in 1 place" in result.err


def test_gap_fill_answers_from_past_a_damaged_record(spawn, spawn_child, forwarder, run_dir):
    middle = SEGMENT // 2  # among the DATA trades
    directory, intact = damaged(spawn, spawn_child, forwarder, run_dir, middle)
    data = topic("trade", "test", "DATA")
    trades = [msgpack.unpackb(r.data) for r in intact if r.topic == data]
    epoch, seqs = trades[0]["e"], [t["q"] for t in trades if t["px"] >= 0]
    assert seqs == list(range(1, COUNT + 1))
    gone = {msgpack.unpackb(r.data)["q"] for r in lost(intact, list(Recording(directory).records()))
            if r.topic == data}

    endpoint, log = f"ipc://{run_dir}/gapfill", run_dir / "recorder.log"
    beats = Subscriber(forwarder.subscribe, ["heartbeat.recorder"])
    with log.open("w") as stderr:
        spawn_child("tickmesh.consumers.recorder", "recorder",
                    {"directory": str(directory), "gapfill_endpoint": endpoint}, stderr=stderr)
    filler = GapFiller(endpoint)
    fill = filler.fetch(data, epoch, 1, COUNT)
    found = [msgpack.unpackb(p)["q"] for p in fill.payloads]
    assert found == [q for q in seqs if q not in gone]
    assert fill.missing == ([(min(gone), max(gone))] if gone else [])

    told = [json.loads(line) for line in log.read_text().splitlines()
            if "damaged" in line]
    assert len(told) == 1, log.read_text()
    assert told[0]["segment"] == str(Recording(directory).segments[0])
    assert told[0]["offset"] <= middle < told[0]["offset"] + told[0]["bytes"]
    filler.fetch(data, epoch, 1, 10)  # the same damage again: not told again
    assert len([line for line in log.read_text().splitlines() if "damaged" in line]) == 1

    def skipped() -> Heartbeat | None:
        beat = beats.recv(timeout=0.1)
        return beat if beat is not None and beat.metric("gapfill_records_skipped") else None

    beat = wait_until(skipped, timeout=10, what="a heartbeat counting the skipped records")
    assert beat.metric("gapfill_bytes_skipped") == told[0]["bytes"]
    assert beat.metric("gapfill_records_skipped") == told[0]["records"]
    filler.close()
    beats.close()
