"""Replay and export of a real recording; bad input: a missing path, a non-recording, a torn,
truncated or newer-version recording."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
from pathlib import Path

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq

from tickmesh.bus import events
from tickmesh.bus.subscriber import Subscriber
from tickmesh.consumers.recorder.recording import (FORMAT_VERSION, HEADER, MAGIC, MESSAGE,
                                                   Recording, encode_record)
from tests.conftest import REPO
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
    sub = Subscriber(f"ipc://{replay_dir}/subscribe", ["*"], raw=True,
                     accept_stale=True)  # the recorded bus's heartbeats: an older epoch
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


def _readme_recipe() -> tuple[list[str], list[str]]:
    """The README's two-terminal replay recipe: the replay's arguments and the tail's."""
    section = (REPO / "README.md").read_text().split("## Recording, replay and export", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    replay_line, tail_line = [line for line in block.splitlines() if line.strip()]
    replay = shlex.split(replay_line.replace("$(id -u)", str(os.getuid())))
    tail = shlex.split(re.fullmatch(r"TICKMESH_RUN_DIR=<[^>]*> (.*)", tail_line.strip()).group(1))
    assert replay[:2] == tail[:1] + ["replay"] == [".venv/bin/tickmesh", "replay"]
    return replay[2:], tail[1:]


def _lines(stream) -> list[str]:
    """The lines that come on `stream`, as they come (a reader thread)."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True).start()
    return lines


def _replay_on_a_terminal(spawn, argv: list[str]) -> tuple[subprocess.Popen, Path, int]:
    """`tickmesh replay ARGV` with a terminal as its stdin, as the README's first terminal;
    its run dir, from what it prints; the terminal's other end (to close)."""
    controller, terminal = os.openpty()
    replay = spawn([*TICKMESH, "replay", *argv], stdin=terminal, stderr=subprocess.PIPE,
                   text=True)
    os.close(terminal)
    said = replay.stderr.readline()
    run_dir = Path(re.search(r"TICKMESH_RUN_DIR=(\S+)", said).group(1))
    return replay, run_dir, controller


def test_the_readme_replay_recipe_loses_nothing_and_leaves_nothing(spawn, spawn_child,
                                                                    forwarder, run_dir):
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT)
    data = [r for r in records(directory) if r.type == MESSAGE and r.topic == b"trade.test.DATA|"]
    first, last = data[100], data[200]  # the window: from the 101st DATA trade to the 201st
    replay_args, tail_args = _readme_recipe()
    window = {"--filter": "trade.*.DATA", "--from": str(first.recv_ns), "--to": str(last.recv_ns)}
    argv = [str(directory)] + [window.get(before, arg) for before, arg in
                               zip(replay_args, replay_args[1:])]
    assert argv[1:3] == ["--speed", "10"]
    replay, replay_dir, terminal = _replay_on_a_terminal(spawn, argv)
    try:
        tail = spawn([*TICKMESH, *tail_args], env={"TICKMESH_RUN_DIR": str(replay_dir)},
                     stdout=subprocess.PIPE, text=True)
        printed = _lines(tail.stdout)
        got = wait_until(lambda: [json.loads(line) for line in printed
                                  if json.loads(line).get("s") == "DATA"],  # tail --json's
                         timeout=20, what="the tail to print the window's DATA trades")
        assert got[0]["q"] == events.decode(first.data).seq  # the window's first event
        assert replay.wait(timeout=20) == 0
    finally:
        os.close(terminal)
    assert not replay_dir.exists(), list(replay_dir.iterdir())


def test_a_replay_stopped_by_ctrl_c_leaves_nothing(spawn, spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, COUNT)
    replay, replay_dir, terminal = _replay_on_a_terminal(spawn, [str(directory)])
    said = _lines(replay.stderr)
    try:
        wait_until(lambda: any("waiting for a subscriber" in line for line in said), timeout=15,
                   what="the replay to wait for its first subscriber, its bus up")
        assert (replay_dir / "system.json").exists()
        replay.send_signal(signal.SIGINT)  # Ctrl-C (a terminal sends it to the whole group)
        assert replay.wait(timeout=20) == 130
    finally:
        os.close(terminal)
    assert not replay_dir.exists(), list(replay_dir.iterdir())
    assert "Traceback" not in "".join(said)
