"""A book that says live is right, whatever the bus does (issue 16's three ways a book lied),
each against the real order-book builder process on a real bus:

- an old snapshot (an older publisher epoch: a rogue, or a replay of an earlier recording) is
  ignored: the live book keeps its prices and goes on taking the real deltas;
- a gap revealed in the same read as the snapshot before it makes the book stale (the gap is
  told at its place, after the snapshot, not while the batch is read);
- a handler that stops (a final heartbeat), is killed or hangs (no heartbeat) leaves its books
  stale, not live, with the reason.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tickmesh.bus import BookDelta, BookSnapshot, Publisher
from tickmesh.bus.events import encode
from tickmesh.bus.topics import topic
from tickmesh.consumers.books.snapshots import request_book
from tests.test_books_e2e import start_builder, start_forwarder, subscribed
from tests.waiting import wait_until

PROVIDER = "feed"
CHILD = "tests.children.book_feed"


def snapshot(symbol: str, generation: int, bid: float) -> BookSnapshot:
    now = time.time_ns()
    return BookSnapshot(provider=PROVIDER, symbol=symbol, ts_event=now, ts_recv=now,
                        bids=[(bid, 1.0)], asks=[(bid + 2, 1.0)], generation=generation)


def delta(symbol: str, generation: int, bid: float, size: float) -> BookDelta:
    now = time.time_ns()
    return BookDelta(provider=PROVIDER, symbol=symbol, ts_event=now, ts_recv=now,
                     bids=[(bid, size)], asks=[], generation=generation)


def book(endpoint: str, symbol: str, provider: str = PROVIDER) -> dict:
    return request_book(endpoint, provider, symbol, 0, timeout=5)


def test_an_old_snapshot_never_replaces_a_live_book(spawn_child, run_dir: Path):
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    start_builder(spawn_child, bus, endpoint, PROVIDER)
    subscribed(bus, endpoint, PROVIDER)
    live = Publisher(bus.publish)
    live.publish(snapshot("BTC", 1, 100.0))
    wait_until(lambda: book(endpoint, "BTC").get("state") == "live", what="the live book")
    old = Publisher(bus.publish, epoch=live.epoch - 10**9)  # started a second earlier
    old.publish(snapshot("BTC", 7, 50.0))  # a replay of an earlier day, say
    live.publish(delta("BTC", 1, 100.0, 5.0))  # the real feed goes on
    answer = wait_until(lambda: (a := book(endpoint, "BTC"))["bids"] == [[100.0, 5.0]] and a,
                        what="the real delta applied")
    assert answer["state"] == "live" and answer["asks"] == [[102.0, 1.0]]
    for publisher in (live, old):
        publisher.close()


def test_a_gap_in_the_same_read_as_the_snapshot_before_it_makes_the_book_stale(
        spawn_child, run_dir: Path):
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    builder = start_builder(spawn_child, bus, endpoint, PROVIDER, resync_timeout=30.0,
                            resync_max=60.0)
    subscribed(bus, endpoint, PROVIDER)
    publisher = Publisher(bus.publish)
    symbols = [f"S{i}" for i in range(10)]
    for symbol in symbols:
        publisher.publish(snapshot(symbol, 1, 100.0))
        publisher.publish(delta(symbol, 1, 100.0, 2.0))
    wait_until(lambda: all(book(endpoint, s).get("state") == "live" for s in symbols),
               what="ten live books")
    builder.send_signal(signal.SIGSTOP)  # busy: what follows is read in one batch
    try:
        for symbol in symbols:
            publisher.publish(snapshot(symbol, 2, 100.0))
            lost = delta(symbol, 2, 100.0, 3.0)  # the delta after the snapshot, lost ...
            lost.seq, lost.epoch = 3, publisher.epoch  # ... as the next one's number says
            publisher.publish_raw(topic("book_delta", PROVIDER, symbol), encode(lost))
    finally:
        builder.send_signal(signal.SIGCONT)
    publisher.publish(snapshot("DONE", 1, 1.0))
    wait_until(lambda: book(endpoint, "DONE").get("state") == "live", what="the batch handled")
    states = {s: book(endpoint, s) for s in symbols}
    assert all(a["state"] == "stale" and "bus gap" in a["message"] for a in states.values()), \
        states
    publisher.close()


def feed_and_builder(spawn_child, run_dir: Path, name: str):
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    start_builder(spawn_child, bus, endpoint, name, heartbeat_timeout=1.0)
    feed = spawn_child(CHILD, name, {"symbol": "BOOK"}, bus=bus)
    wait_until(lambda: book(endpoint, "BOOK", name).get("state") == "live",
               timeout=15, what="the feed's live book")
    return feed, endpoint


@pytest.mark.parametrize("signum, message", [
    (signal.SIGTERM, "handler stopped"),  # stopped: its final heartbeat says so
    (signal.SIGKILL, "handler silent for 1.0 s"),  # killed: no heartbeat any more
    (signal.SIGSTOP, "handler silent for 1.0 s"),  # hung: the same, alive
], ids=["stopped", "killed", "hung"])
def test_a_handler_gone_leaves_its_books_stale(spawn_child, run_dir: Path, signum, message):
    name = f"gone-{signum}"
    feed, endpoint = feed_and_builder(spawn_child, run_dir, name)
    feed.send_signal(signum)
    try:
        answer = wait_until(lambda: (a := book(endpoint, "BOOK", name))["state"] != "live"
                            and a, timeout=10, what="the book to leave live")
        assert (answer["state"], answer["message"]) == ("stale", message)
    finally:
        feed.send_signal(signal.SIGCONT)
