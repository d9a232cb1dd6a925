"""The order-book builder as a real process on a real forwarder, the test playing the handler
(a real Publisher and Subscriber): its books against the true ones through bus drops, missed
snapshots, handler resyncs and a crossed book; a late joiner's `tickmesh book`; its exit codes.
And, in-process, the bbo a batch of events makes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from tickmesh.bus import BookDelta, BookSnapshot, Publisher, Status, Subscriber, Trade
from tickmesh.bus.events import Bbo, BookStatus, Control, Heartbeat
from tickmesh.bus.sockets import BusConfig
from tickmesh.consumers.books.builder import Builder, Settings
from tickmesh.consumers.books.snapshots import NoBuilder, request_book
from tests.books import apply_levels
from tests.buslog import BusLog
from tests.conftest import wait_for_forwarder
from tests.supervised import TICKMESH, child_toml, env, tickmesh, write_config
from tests.waiting import wait_until

PROVIDER = "test"


class FakeHandler:
    """A handler of provider "test": keeps the true books, publishes their snapshots (each a new
    generation) and random deltas near the top, and answers a Control "resync" as handlers do:
    a per-symbol Status "resyncing", then a fresh snapshot. Bids stay in [90, 100), asks in
    (100, 110], so that random deltas never cross a book."""

    def __init__(self, bus: BusConfig, seed: int = 1) -> None:
        self.publisher = Publisher(bus.publish)
        self.controls = Subscriber(bus.subscribe, [f"control.{PROVIDER}"])
        self.rng = random.Random(seed)
        self.books: dict[str, tuple[dict, dict]] = {}
        self.generation: dict[str, int] = {}
        self.last: dict[str, tuple[str, int, int]] = {}  # symbol -> (kind, seq, generation)
        self.published = 0
        self.resyncs_answered = 0

    def close(self) -> None:
        self.controls.close()
        self.publisher.close()

    def _event(self, kind, symbol: str, bids, asks):
        now = time.time_ns()
        event = kind(provider=PROVIDER, symbol=symbol, ts_event=now, ts_recv=now, bids=bids,
                     asks=asks, generation=self.generation[symbol])
        self.publisher.publish(event)
        self.last[symbol] = (kind.__struct_config__.tag, event.seq, event.generation)
        self.published += 1
        return event

    def snapshot(self, symbol: str) -> BookSnapshot:
        if symbol not in self.books:
            bids = {round(100 - 0.25 * i, 2): float(self.rng.randint(1, 9)) for i in range(1, 21)}
            asks = {round(100 + 0.25 * i, 2): float(self.rng.randint(1, 9)) for i in range(1, 21)}
            self.books[symbol] = (bids, asks)
        self.skip_snapshot(symbol)
        bids, asks = self.top(symbol)
        return self._event(BookSnapshot, symbol, bids, asks)

    def skip_snapshot(self, symbol: str) -> None:
        """A new generation whose snapshot nobody sees (as if the bus lost it)."""
        self.generation[symbol] = self.generation.get(symbol, 0) + 1

    def delta(self, symbol: str) -> BookDelta:
        bids, asks = self.books[symbol]
        changes: tuple[list, list] = ([], [])
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            is_bid = self.rng.random() < 0.5
            ticks = min(int(self.rng.expovariate(0.3)) + 1, 39)
            price = round(100 - 0.25 * ticks, 2) if is_bid else round(100 + 0.25 * ticks, 2)
            size = 0.0 if self.rng.random() < 0.2 else float(self.rng.randint(1, 9))
            level = [(price, size)]
            apply_levels((bids, asks), level if is_bid else [], [] if is_bid else level)
            changes[0 if is_bid else 1].append((price, size))
        return self._event(BookDelta, symbol, *changes)

    def top(self, symbol: str) -> tuple[list, list]:
        bids, asks = self.books[symbol]
        return sorted(bids.items(), reverse=True), sorted(asks.items())

    def status(self, symbol: str, state: str) -> None:
        now = time.time_ns()
        self.publisher.publish(Status(provider=PROVIDER, symbol=symbol, ts_event=now,
                                      ts_recv=now, state=state))

    def serve_controls(self) -> None:
        """Answer every resync request that has come."""
        while (request := self.controls.recv(timeout=0)) is not None:
            if isinstance(request, Control) and request.action == "resync":
                self.status(request.symbol, "resyncing")
                self.snapshot(request.symbol)
                self.resyncs_answered += 1


def as_json(levels) -> list:
    return [list(level) for level in levels]


def start_builder(spawn_child, bus: BusConfig, endpoint: str, **settings):
    settings = {"snapshot_endpoint": endpoint, "providers": [PROVIDER], "depth_rate": 10.0,
                **settings}
    proc = spawn_child("tickmesh.consumers.books", "books", settings, bus=bus)
    wait_until(lambda: _answers(endpoint), timeout=15, what="the builder's snapshot service")
    return proc


def _answers(endpoint: str) -> bool:
    try:
        request_book(endpoint, PROVIDER, "nothing", 0, timeout=0.5)
        return True
    except NoBuilder:
        return False


def builder_book(endpoint: str, symbol: str) -> dict:
    return request_book(endpoint, PROVIDER, symbol, 0, timeout=5)


def known(handler: FakeHandler, endpoint: str, symbol: str) -> bool:
    """Publish a snapshot (the builder's subscription may not have reached the forwarder yet);
    true once the builder has a book of `symbol`."""
    handler.snapshot(symbol)
    return "error" not in builder_book(endpoint, symbol)


def in_sync(handler: FakeHandler, endpoint: str, symbol: str) -> dict | None:
    """The builder's book once it is live and has applied the last event published (answering
    resync requests meanwhile), else None."""
    handler.serve_controls()
    book = builder_book(endpoint, symbol)
    kind, seq, generation = handler.last[symbol]
    if book["state"] == "live" and (book["kind"], book["seq"], book["generation"]) == (
            kind, seq, generation):
        return book
    return None


def assert_equal_to_the_true_book(book: dict, handler: FakeHandler, symbol: str) -> None:
    bids, asks = handler.top(symbol)
    assert (book["bids"], book["asks"]) == (as_json(bids), as_json(asks))


@pytest.fixture
def endpoint(run_dir: Path) -> str:
    return f"ipc://{run_dir}/books"


@pytest.fixture
def handler(forwarder):
    fake = FakeHandler(forwarder)
    yield fake
    fake.close()


# --- the book equals the true book ----------------------------------------------------------------

def test_snapshot_and_deltas_build_the_true_book_of_each_symbol(spawn_child, forwarder, handler,
                                                                 endpoint):
    start_builder(spawn_child, forwarder, endpoint)
    symbols = ["AAPL", "BRK.B"]
    for symbol in symbols:
        wait_until(lambda: known(handler, endpoint, symbol), what=f"the builder to know {symbol}")
    for _ in range(2000):
        handler.delta(handler.rng.choice(symbols))
    for symbol in symbols:
        book = wait_until(lambda: in_sync(handler, endpoint, symbol), what=f"{symbol} in sync")
        assert_equal_to_the_true_book(book, handler, symbol)
        top = request_book(endpoint, PROVIDER, symbol, 3, timeout=5)
        assert (top["bids"], top["asks"]) == (book["bids"][:3], book["asks"][:3])


# --- 100,000 updates, with bus drops, missed snapshots and handler resyncs -------------------------

SMALL_HWM = 1000  # messages the forwarder queues per subscriber before it drops
BURST = 10_000  # deltas published while the builder is stopped: far more than any queue holds
CHUNK = 500  # deltas published between two looks: fewer than the queues hold


@pytest.fixture
def small_bus(spawn_child, run_dir: Path) -> BusConfig:
    bus = BusConfig(f"ipc://{run_dir}/publish", f"ipc://{run_dir}/subscribe", hwm=SMALL_HWM,
                    subscriber_hwm=SMALL_HWM)
    spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=bus)
    wait_for_forwarder(bus)
    return bus


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"


class Run:
    """The test's side of the long run: the fake handler, and the bus as the test sees it."""

    def __init__(self, handler: FakeHandler, log: BusLog, endpoint: str, builder) -> None:
        self.handler, self.log, self.endpoint, self.builder = handler, log, endpoint, builder
        self.symbol = "AAPL"

    def statuses(self, since: int) -> list[tuple[str, str]]:
        return [(s.state, s.message) for s in self.log.of(BookStatus, since)]

    def detected(self, since: int, state: str, words: str, resync: bool) -> None:
        """Keep the feed going until the builder said `state` (with `words` in the message)
        and, if `resync`, asked for a resync."""
        def seen(_events) -> bool:
            self.handler.delta(self.symbol)
            self.handler.serve_controls()
            said = any(st == state and words in msg for st, msg in self.statuses(since))
            return said and (not resync or bool(self.log.of(Control, since)))

        self.log.until(seen, what=f"book_status {state} ({words})", timeout=20)

    def caught_up(self) -> dict:
        return wait_until(lambda: in_sync(self.handler, self.endpoint, self.symbol),
                          timeout=20, what="the builder in sync")

    def bus_drop(self) -> None:
        """Stop the builder, publish far more than the queues hold, wait until the forwarder
        has passed all of it (a marker after it came back to us), go on."""
        mark = self.log.mark()
        self.builder.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: stopped(self.builder.pid), what="the builder stopped")
            for _ in range(BURST):
                self.handler.delta(self.symbol)
            now = time.time_ns()
            self.handler.publisher.publish(Trade(provider=PROVIDER, symbol="MARK", ts_event=now,
                                                 ts_recv=now, price=float(mark), size=1.0))
            self.log.until(lambda _: any(t.price == mark for t in self.log.of(Trade, mark)),
                           what="the marker through the forwarder")
        finally:
            self.builder.send_signal(signal.SIGCONT)
        self.detected(mark, "stale", "bus gap", resync=True)

    def missed_snapshot(self) -> None:
        mark = self.log.mark()
        self.handler.skip_snapshot(self.symbol)
        self.detected(mark, "stale", "missed the snapshot", resync=True)

    def handler_resync(self) -> None:
        mark = self.log.mark()
        self.handler.status(self.symbol, "resyncing")
        self.log.until(lambda _: ("resyncing", "the handler is rebuilding the book")
                       in self.statuses(mark), what="book_status resyncing")
        self.handler.snapshot(self.symbol)


@pytest.mark.timeout(180)
def test_100k_updates_with_bus_drops_missed_snapshots_and_resyncs_end_in_the_true_book(
        spawn_child, small_bus, endpoint):
    handler = FakeHandler(small_bus, seed=100)
    builder = start_builder(spawn_child, small_bus, endpoint, rcvhwm=100)
    patterns = [f"book_status.{PROVIDER}", f"control.{PROVIDER}", f"trade.{PROVIDER}.MARK"]
    with BusLog(small_bus.subscribe, patterns) as log:
        run = Run(handler, log, endpoint, builder)
        wait_until(lambda: known(handler, endpoint, run.symbol), what="the builder to know AAPL")
        faults = {"bus_drop": 0, "missed_snapshot": 0, "handler_resync": 0}
        plan = random.Random(5)
        while handler.published < 100_000:
            for _ in range(CHUNK):
                handler.delta(run.symbol)
            run.caught_up()
            fault = plan.choice([*faults, *[None] * 9])
            if fault:
                getattr(run, fault)()
                faults[fault] += 1
                run.caught_up()
        book = run.caught_up()
        handler.close()
    assert_equal_to_the_true_book(book, handler, run.symbol)
    assert all(count >= 2 for count in faults.values()), faults


# --- a crossed book -------------------------------------------------------------------------------

def test_a_crossed_book_is_detected_counted_resynced_and_never_published_as_bbo(
        spawn_child, forwarder, handler, endpoint):
    start_builder(spawn_child, forwarder, endpoint)
    patterns = [f"bbo.{PROVIDER}", f"book_status.{PROVIDER}", f"control.{PROVIDER}",
                "heartbeat.books"]
    with BusLog(forwarder.subscribe, patterns) as log:
        wait_until(lambda: known(handler, endpoint, "X"), what="the builder to know X")
        handler.delta("X")
        wait_until(lambda: in_sync(handler, endpoint, "X"), what="X in sync")
        mark = log.mark()
        bids, asks = handler.books["X"]
        crossing = min(asks) + 0.5
        bids[crossing] = 1.0
        handler._event(BookDelta, "X", [(crossing, 1.0)], [])
        log.until(lambda _: any(s.state == "crossed" for s in log.of(BookStatus, mark))
                  and log.of(Control, mark), what="crossed, and a resync asked")
        assert builder_book(endpoint, "X")["state"] == "crossed"
        del bids[crossing]  # the provider's next snapshot is sound again
        handler.serve_controls()
        log.until(lambda _: any(s.state == "live" for s in log.of(BookStatus, mark)),
                  what="live again")
        log.until(lambda _: any(beat.metric("books_crossed", provider=PROVIDER) == 1
                                for beat in log.of(Heartbeat, mark)), what="one crossed counted")
        assert not [b for b in log.of(Bbo) if b.bid_price >= b.ask_price]
        best_bid, best_ask = max(bids), min(asks)
        log.until(lambda _: [(b.bid_price, b.ask_price) for b in log.of(Bbo, mark)][-1:]
                  == [(best_bid, best_ask)], what="the sound top as bbo")


# --- tickmesh book --------------------------------------------------------------------------------

def books_config(run_dir: Path, endpoint: str) -> Path:
    return write_config(run_dir, child_toml("books", "tickmesh.consumers.books",
                                            {"snapshot_endpoint": endpoint}))


def test_a_late_joiner_gets_a_consistent_book_at_once(spawn, spawn_child, forwarder, handler,
                                                      endpoint, run_dir):
    start_builder(spawn_child, forwarder, endpoint)
    wait_until(lambda: known(handler, endpoint, "AAPL"), what="the builder to know AAPL")
    history = {handler.last["AAPL"]: handler.top("AAPL")}
    config = books_config(run_dir, endpoint)
    late = spawn([*TICKMESH, "book", PROVIDER, "AAPL", "--config", str(config), "--json",
                  "--depth", "0", "--timeout", "1"], env=env(run_dir), stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while late.poll() is None and time.monotonic() < deadline:
        handler.delta("AAPL")  # the market goes on while the late joiner starts and asks
        handler.serve_controls()
        history[handler.last["AAPL"]] = handler.top("AAPL")
        try:
            late.wait(timeout=0.002)
        except subprocess.TimeoutExpired:
            pass
    out, err = late.communicate(timeout=10)
    assert late.returncode == 0, err
    book = json.loads(out)
    assert book["state"] == "live" and book["provider"] == PROVIDER
    bids, asks = history[(book["kind"], book["seq"], book["generation"])]
    assert (book["bids"], book["asks"]) == (as_json(bids), as_json(asks))


def test_tickmesh_book_prints_a_table_finds_the_running_systems_builder_and_exit_codes(
        spawn, spawn_child, forwarder, handler, endpoint, run_dir):
    start_builder(spawn_child, forwarder, endpoint)
    wait_until(lambda: known(handler, endpoint, "AAPL"), what="the builder to know AAPL")
    config = books_config(run_dir, endpoint)
    (run_dir / "system.json").write_text(json.dumps({  # as a running supervisor writes it
        "config": str(config), "control": f"ipc://{run_dir}/control", "bus": forwarder.to_dict()}))
    found = tickmesh(spawn, run_dir, "book", PROVIDER, "AAPL", "--depth", "2")  # no --config
    assert found.code == 0, found.err
    assert json.loads(found.out)["bids"] == as_json(handler.top("AAPL")[0][:2])
    unknown = tickmesh(spawn, run_dir, "book", PROVIDER, "NOPE", "--config", str(config))
    assert unknown.code == 3 and "no book of 'NOPE'" in unknown.err


def test_tickmesh_book_exits_1_when_no_builder_answers(spawn, run_dir):
    config = books_config(run_dir, f"ipc://{run_dir}/nobody")
    silent = tickmesh(spawn, run_dir, "book", PROVIDER, "AAPL", "--config", str(config),
                      "--timeout", "0.3")
    assert silent.code == 1 and "no book builder answered" in silent.err
    without = write_config(run_dir, child_toml("tail", "tickmesh.consumers.tail"))
    none = tickmesh(spawn, run_dir, "book", PROVIDER, "AAPL", "--config", str(without))
    assert none.code == 1 and "no book builder" in none.err


def test_the_table_on_a_terminal():
    from tickmesh.consumers.books.snapshots import format_table

    table = format_table({"provider": "ib", "symbol": "AAPL", "state": "stale",
                          "message": "bus gap: 3 messages lost", "generation": 2, "seq": 40,
                          "bids": [[99.5, 3.0], [99.0, 1.0]], "asks": [[100.0, 2.0]]})
    lines = table.splitlines()
    assert lines[0] == "ib AAPL: stale (bus gap: 3 messages lost), generation 2, seq 40"
    assert lines[2].split() == ["3", "99.5", "100", "2"] and lines[3].split() == ["1", "99"]


def test_the_table_shows_prices_and_sizes_exactly_as_received():
    from tickmesh.consumers.books.snapshots import format_table

    table = format_table({"provider": "coinbase", "symbol": "BTC-USD", "state": "live",
                          "message": "", "generation": 1, "seq": 9,
                          "bids": [[90312.28, 0.46989847]], "asks": [[90312.29, 1e-08]]})
    assert table.splitlines()[2].split() == ["0.46989847", "90312.28", "90312.29", "1e-08"]


# --- bbo: once per book per batch ---------------------------------------------------------

class Published(list):
    """A publisher stand-in: what the builder published, in order."""

    def publish(self, event) -> None:
        self.append(event)


def builder_alone() -> tuple[Builder, Published]:
    published = Published()
    ctx = SimpleNamespace(settings=Settings(snapshot_endpoint="ipc:///nowhere"),
                          publisher=published, counts=Counter(), name="books")
    return Builder(ctx), published


def book_event(kind, symbol: str, bids, asks, generation: int = 1):
    return kind(provider=PROVIDER, symbol=symbol, ts_event=1, ts_recv=1, bids=bids, asks=asks,
                generation=generation)


def test_a_batch_publishes_one_bbo_per_changed_book_with_its_top_after_the_batch():
    builder, published = builder_alone()
    builder.on_batch([book_event(BookSnapshot, "A", [(99.0, 1.0)], [(101.0, 1.0)]),
                      book_event(BookDelta, "A", [(100.0, 2.0)], []),
                      book_event(BookSnapshot, "B", [(9.0, 1.0)], [(11.0, 1.0)]),
                      book_event(BookDelta, "A", [], [(100.5, 3.0)])], 0.0)
    assert [(b.symbol, b.bid_price, b.bid_size, b.ask_price, b.ask_size)
            for b in published if isinstance(b, Bbo)] == [("A", 100.0, 2.0, 100.5, 3.0),
                                                           ("B", 9.0, 1.0, 11.0, 1.0)]
    published.clear()
    builder.on_batch([book_event(BookDelta, "A", [(98.0, 5.0)], []),  # below the top
                      book_event(BookDelta, "B", [(9.5, 1.0)], []),
                      book_event(BookDelta, "B", [(9.5, 0.0)], [])], 0.0)  # and back
    assert not [b for b in published if isinstance(b, Bbo)]


def test_a_book_that_leaves_live_in_a_batch_gets_its_last_top_before_its_status():
    """Deltas applied while live, then the provider disconnects, in one batch: the bbo of the
    top it had while live comes before the stale status, so the last bbo is the book's."""
    builder, published = builder_alone()
    builder.on_batch([book_event(BookSnapshot, "A", [(99.0, 1.0)], [(101.0, 1.0)])], 0.0)
    published.clear()
    builder.on_batch([book_event(BookDelta, "A", [], [(100.5, 3.0)]),
                      Status(provider=PROVIDER, ts_event=1, ts_recv=1, state="disconnected")],
                     0.0)
    assert [(type(e).__name__, getattr(e, "ask_price", None) or e.state) for e in published
            if isinstance(e, (Bbo, BookStatus))] == [("Bbo", 100.5), ("BookStatus", "stale")]


def test_no_bbo_for_a_book_that_is_not_live_after_the_batch():
    builder, published = builder_alone()
    builder.on_batch([book_event(BookSnapshot, "A", [(99.0, 1.0)], [(101.0, 1.0)]),
                      book_event(BookDelta, "A", [(102.0, 1.0)], [])], 0.0)  # crossed
    assert [b.state for b in published if isinstance(b, BookStatus)] == ["live", "crossed"]
    assert not [b for b in published if isinstance(b, Bbo)]


# --- bounded, and a timer that looks only at the books that wait ---------------------------

def test_books_beyond_max_books_are_refused_and_counted():
    published = Published()
    ctx = SimpleNamespace(settings=Settings(snapshot_endpoint="ipc:///nowhere", max_books=100),
                          publisher=published, counts=Counter(), name="books")
    builder = Builder(ctx)
    builder.on_batch([book_event(BookSnapshot, f"ROGUE{i}", [(1.0, 1.0)], [(2.0, 1.0)])
                      for i in range(5_000)], 0.0)  # a rogue publisher's distinct topics
    assert len(builder.books) == 100 and ctx.counts["books_refused"] == 4_900


def test_the_timer_looks_only_at_books_that_wait_for_a_snapshot():
    builder, published = builder_alone()
    builder.on_batch([book_event(BookSnapshot, f"S{i}", [(1.0, 1.0)], [(2.0, 1.0)])
                      for i in range(1_000)], 0.0)
    assert builder.waiting == set() and builder.states["live"] == 1_000
    builder.on_batch([book_event(BookDelta, "S7", [(1.0, 1.0)], [], generation=2)], 0.0)
    assert builder.waiting == {(PROVIDER, "S7")}  # missed a snapshot: it waits
    assert (builder.states["live"], builder.states["stale"]) == (999, 1)
    builder.on_batch([book_event(BookSnapshot, "S7", [(1.0, 1.0)], [(2.0, 1.0)], 2)], 1.0)
    assert builder.waiting == set() and builder.states["live"] == 1_000
