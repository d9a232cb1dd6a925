"""Replay and export of a real recording; bad input: a missing path, a non-recording, a torn,
truncated or newer-version recording."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq

from tickmesh.bus import events
from tickmesh.bus.subscriber import Subscriber
from tickmesh.consumers.recorder.recording import (FORMAT_VERSION, HEADER, MAGIC, MESSAGE,
                                                   Recording, encode_record)
from tests.recorded import record_run, records
from tests.supervised import TICKMESH, tickmesh
from tests.waiting import wait_until

COUNT = 3000


def test_a_replay_is_the_recorded_sequence_byte_for_byte(spawn, spawn_child, forwarder,
                                                         run_dir):
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT)
    recorded = [(r.topic, r.data) for r in records(directory) if r.type == MESSAGE]
    replay_dir = run_dir / "replay"
    replay = spawn([*TICKMESH, "replay", str(directory), "--speed", "max", "--run-dir",
                    str(replay_dir), "--wait"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                   text=True)
    wait_until((replay_dir / "system.json").exists, timeout=15, what="the replay's own bus")
    sub = Subscriber(f"ipc://{replay_dir}/subscribe", ["*"], raw=True)
    own = wait_until(lambda: sub.recv(timeout=0.1), timeout=15, what="the replay bus's "
                     "forwarder heartbeat (so the subscription is live)")
    replay.stdin.write("go\n")
    replay.stdin.flush()
    replayed = []

    def finished() -> bool:
        while (message := sub.recv(timeout=0.05)) is not None:
            if message.topic == b"status.replay.|":
                if msgpack.unpackb(message.payload)["st"] == "disconnected":
                    return True
            elif message.epoch != own.epoch:  # not the replay bus's own forwarder
                replayed.append((message.topic, message.payload))
        return False

    wait_until(finished, timeout=20, what="the replay to finish")
    assert replayed == recorded
    replay.stdin.close()
    assert replay.wait(timeout=10) == 0
    assert f"{len(recorded)} events" in replay.stderr.read()
    sub.close()


def test_export_writes_parquet_tables_that_round_trip(spawn, spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT)
    out = run_dir / "out"
    result = tickmesh(spawn, run_dir, "export", str(directory), "--to", "parquet", "--out",
                      str(out))
    assert result.code == 0, result.err
    table = pq.read_table(out / "trade.parquet")
    assert table.schema.field("ts_event").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("recorded_at").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("price").type == pa.float64()
    assert table.schema.field("seq").type == pa.int64()
    trades = [(events.decode(r.data), r.recv_ns) for r in records(directory)
              if r.type == MESSAGE and r.topic.startswith(b"trade.")]
    rows = table.to_pylist()
    nanos = {name: table.column(name).cast(pa.int64()).to_pylist()
             for name in ("ts_event", "ts_recv", "recorded_at")}
    assert len(rows) == len(trades)
    for i, (row, (trade, recv_ns)) in enumerate(zip(rows, trades)):
        assert row["price"] == trade.price and row["size"] == trade.size
        assert (row["seq"], row["epoch"], row["symbol"]) == (trade.seq, trade.epoch, trade.symbol)
        assert (nanos["ts_event"][i], nanos["ts_recv"][i], nanos["recorded_at"][i]) == \
            (trade.ts_event, trade.ts_recv, recv_ns)
    beats = pq.read_table(out / "heartbeat.parquet")
    assert beats.num_rows > 0 and beats.schema.field("metrics").type.value_type.num_fields == 4


def test_a_missing_path_or_a_non_recording_is_exit_2(spawn, run_dir):
    not_recording = run_dir / "notes.txt"
    not_recording.write_text("hello")
    for path, says in ((run_dir / "missing", "no such file"), (not_recording, "not a recording"),
                       (run_dir, "not a recording")):
        for command in (["replay", str(path)], ["export", str(path), "--out", str(run_dir / "o")]):
            result = tickmesh(spawn, run_dir, *command)
            assert result.code == 2, (command, result.err)
            assert says in result.err and "Traceback" not in result.err


def _segment(path: Path, payloads: list[bytes], version: int = FORMAT_VERSION) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = HEADER.pack(MAGIC, version, 0) + b"".join(
        encode_record(i, MESSAGE, 10**18 + i, b"trade.test.X|", p)
        for i, p in enumerate(payloads))
    path.write_bytes(data)
    return data


def _trade(seq: int, version: int = events.SCHEMA_VERSION) -> bytes:
    return events.encode(events.Trade(provider="test", symbol="X", ts_event=1, ts_recv=2,
                                      price=float(seq), size=1.0, seq=seq, epoch=7,
                                      version=version))


def test_a_damaged_recording_is_read_as_far_as_it_can_be(spawn, run_dir):
    day = run_dir / "rec" / "2001-09-09"
    _segment(day / "0000000000000000001.tmrec", [_trade(1), _trade(2)])
    _segment(day / "0000000000000000002.tmrec", [_trade(3)], version=FORMAT_VERSION + 1)
    (day / "0000000000000000003.tmrec").write_bytes(MAGIC[:3])  # cut inside the header
    torn = _segment(day / "0000000000000000004.tmrec", [_trade(4), _trade(5, version=99)])
    (day / "0000000000000000004.tmrec").write_bytes(torn + encode_record(
        2, MESSAGE, 10**18, b"trade.test.X|", _trade(6))[:-5])

    recording = Recording(run_dir / "rec")
    seqs = [msgpack.unpackb(r.data)["q"] for r in recording.records()]
    assert seqs == [1, 2, 4, 5]
    problems = "\n".join(recording.skipped)
    assert f"format version {FORMAT_VERSION + 1} is newer" in problems
    assert "truncated header" in problems
    assert "torn tail" in problems and len(recording.skipped) == 3

    result = tickmesh(spawn, run_dir, "export", str(run_dir / "rec"), "--out", str(run_dir / "o"))
    assert result.code == 0, result.err
    assert pq.read_table(run_dir / "o" / "trade.parquet").column("seq").to_pylist() == [1, 2, 4]
    assert "skipped 1 events: schema version 99" in result.err
    assert f"format version {FORMAT_VERSION + 1} is newer" in result.err
    assert "torn tail" in result.err
