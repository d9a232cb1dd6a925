"""Fault suite, process deaths: a small real system under a real supervisor (the forwarder, the
Binance simulator at a raised rate, its handler, the order-book builder, the recorder), and every
kind of process in it SIGKILLed mid-stream in turn: the handler, the builder, the recorder, the
simulator and the forwarder. After each kill the supervisor restarts the process, a test
subscriber keeps receiving, and the books are live again. At the end the recording shows every
hole: a gap record, a new epoch (of the killed publisher only, starting at 1), or the recorder's
own restart (a new segment); everything else is contiguous, the supervisor's heartbeats (a
publisher no kill touches) without a single hole."""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest

from tickmesh.bus import Trade
from tickmesh.consumers.books.snapshots import NoBuilder, request_book
from tickmesh.consumers.recorder.recording import GAP, GAP_DATA, MESSAGE, Recording
from tests import simcontrol
from tests.buslog import BusLog
from tests.test_books_e2e import binance_true_book, equal_books
from tests.conftest import free_port
from tests.supervised import Running, child_toml, write_config
from tests.waiting import wait_until

SYMBOLS = ["BTC-USDT", "ETH-USDT"]
KILLS = ["binance", "books", "recorder", "binance-sim", "forwarder"]
# the topics each process publishes (their sources), i.e. where a new epoch is expected
SOURCES = {"binance": {"binance"}, "books": {"books"}, "recorder": {"recorder"},
           "binance-sim": {"binance-sim"}, "forwarder": {"forwarder"}}


@pytest.fixture
def system(spawn, run_dir) -> Running:
    port = free_port()
    config = write_config(
        run_dir,
        child_toml("recorder", "tickmesh.consumers.recorder",
                   {"directory": "{run_dir}/rec", "flush_ms": 50}),
        child_toml("binance-sim", "tickmesh.handlers.binance.sim.server",
                   {"port": port, "rate": 100, "symbols": ",".join(SYMBOLS)}),
        child_toml("binance", "tickmesh.handlers.binance.handler",
                   {"url": f"ws://127.0.0.1:{port}/stream", "rest_url": f"http://127.0.0.1:{port}",
                    "symbols": SYMBOLS, "channels": ["depth", "trade"], "depth_limit": 1000,
                    "backoff_min": 0.05, "backoff_max": 0.5},
                   after=["binance-sim", "recorder"]),
        child_toml("books", "tickmesh.consumers.books",
                   {"snapshot_endpoint": "ipc://{run_dir}/books", "providers": ["binance"],
                    "resync_timeout": 0.5, "resync_max": 2.0}, after=["recorder"]))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_all_running(timeout=30)
    supervisor.sim_port = port
    return supervisor


def versions(endpoint: str) -> dict[str, tuple[int, int]] | None:
    """Each symbol's book (epoch, generation) once every book is live, else None."""
    try:
        answers = [request_book(endpoint, "binance", s, 1, timeout=1) for s in SYMBOLS]
    except NoBuilder:
        return None
    if all(a.get("state") == "live" for a in answers):
        return {a["symbol"]: (a["epoch"], a["generation"]) for a in answers}
    return None


def restarted(supervisor: Running, name: str, old_pid: int) -> bool:
    child = supervisor.child(name)
    return bool(child and child["state"] == "running" and child["pid"] != old_pid)


@pytest.mark.timeout(120)
def test_every_kind_of_process_sigkilled_mid_stream(system, run_dir):
    books = f"ipc://{run_dir}/books"
    directory = run_dir / "rec"
    killed_at: dict[str, int] = {}
    recorder_segments: list[Path] = []
    with BusLog(f"ipc://{run_dir}/subscribe", ["trade.binance"]) as trades:
        trades.until(lambda _: len(trades.of(Trade)) >= 20, what="Binance trades", timeout=30)
        before = wait_until(lambda: versions(books), timeout=30, what="every book live")
        for name in KILLS:
            child = system.child(name)
            mark = trades.mark()
            if name == "recorder":
                recorder_segments = list(Recording(directory).segments)
            killed_at[name] = time.time_ns()
            os.kill(child["pid"], signal.SIGKILL)
            wait_until(lambda: restarted(system, name, child["pid"]), timeout=20,
                       what=f"{name} restarted")
            assert system.child(name)["restarts"] == 1
            trades.until(lambda _: len(trades.of(Trade, mark)) >= 20, timeout=20,
                         what=f"trades again after {name} was killed")

            def resynced() -> dict | None:
                now = versions(books)
                # a new handler (epoch), a new connection (generation): new books; a new
                # builder, a recorder death: live books are enough; a forwarder restart: live
                # books too (libzmq keeps a connecting socket's queue across the reconnection,
                # so it may lose nothing; if it did, the builder saw the gap and resynced)
                changed = name in ("books", "recorder", "forwarder") or (
                    now and all(now[s] != before[s] for s in SYMBOLS))
                return now if changed else None

            before = wait_until(resynced, timeout=20, what=f"books live again after {name}")
    # and the books are right, not merely live: equal to the simulator's true books once its
    # market stands still
    port = system.sim_port
    simcontrol.control(port, "quiet", seconds=60)
    wait_until(lambda: equal_books(books, "binance",
                                   {s: binance_true_book(port, s) for s in SYMBOLS}),
               timeout=20, what="the builder's books equal to the true books")
    # wait until what the last events are written (flush_ms 50), then read
    settled = time.time_ns()
    wait_until(lambda: any(r.recv_ns > settled and r.topic == b"heartbeat.supervisor.|"
                           for r in Recording(directory).records()), timeout=10,
               what="the recording to go past the end")
    check_recording(directory, recorder_segments, killed_at)


def check_recording(directory: Path, life_one: list[Path], killed_at: dict[str, int]) -> None:
    recording = Recording(directory)
    assert recording.segments[:len(life_one)] == life_one and len(recording.segments) > len(life_one)
    last: dict[bytes, tuple[int, int, int]] = {}  # topic -> (epoch, seq, segment index)
    announced: dict[bytes, set[tuple[int, int, int]]] = defaultdict(set)
    new_epochs: dict[bytes, list[int]] = defaultdict(list)  # topic -> receive times
    holes_at_recorder_restart = 0
    for index, segment in enumerate(recording.segments):
        for record in Recording(segment).records():
            topic = record.topic
            if record.type == GAP:
                epoch, first, count = GAP_DATA.unpack(record.data)
                announced[topic].add((epoch, first, count))
                continue
            assert record.type == MESSAGE
            event = msgpack.unpackb(record.data)
            epoch, seq = event["e"], event["q"]
            if topic in last:
                last_epoch, last_seq, last_index = last[topic]
                across_restart = last_index < len(life_one) <= index
                if epoch != last_epoch:
                    new_epochs[topic].append(record.recv_ns)
                    assert seq == 1 or across_restart, (topic, seq)  # nothing lost of it
                elif seq != last_seq + 1:
                    if across_restart:
                        holes_at_recorder_restart += 1
                    else:
                        hole = (epoch, last_seq + 1, seq - last_seq - 1)
                        assert hole in announced[topic], f"silent loss on {topic}: {hole}"
            last[topic] = (epoch, seq, index)
    assert recording.skipped == []
    # new epochs only where a process was killed, and only for what it published
    for topic, times in new_epochs.items():
        source = topic.split(b".")[1].decode()
        killers = [name for name, sources in SOURCES.items() if source in sources]
        assert killers, f"{topic} restarted, but its publisher was never killed"
        assert all(t > killed_at[killers[0]] for t in times), topic
    assert {b"trade.binance.BTC-USDT|", b"heartbeat.binance.|", b"heartbeat.books.|",
            b"heartbeat.binance-sim.|", b"heartbeat.forwarder.|"} <= set(new_epochs)
    # the recorder's own death: a hole at its restart (it cannot know what it missed)
    assert holes_at_recorder_restart >= 1
    beats = [msgpack.unpackb(r.data)["q"] for r in recording.records()
             if r.type == MESSAGE and r.topic == b"heartbeat.supervisor.|"]
    assert len(beats) >= 5  # the untouched publisher: contiguous except where announced
