"""The books' invariant, as a property: whatever the bus does, a book that says live equals the
book its publisher sent, and every loss ends in stale, then live again from a snapshot.

A hypothesis rule-based state machine drives the real order-book builder (consumers.books
.Builder) behind a real Subscriber (its sequence tracking, ordering and publisher watch) on a
real ZeroMQ socket (inproc), with random interleavings of: snapshots and deltas of a few
symbols, each message delivered, lost or duplicated; the symbols' messages reordered among
themselves (each symbol's own order kept, as one publisher socket keeps it); an older
publisher's snapshots (stale epochs); publisher restarts (killed: no final heartbeat) and stops
(a final heartbeat); batches of random size read off the socket; time passing (resync
requests, which the publisher answers with a fresh snapshot).

After every step: every live book equals the reference book after the last message of its
version's publisher the builder was handed. At the end (the feed answering resyncs, time
passing): every book of the running publisher is live and equal to what it sent.

`make test` runs a bounded number of examples (seconds); `make soak` runs many more
(TICKMESH_PROPERTY_EXAMPLES).
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace

import zmq
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tickmesh.bus.events import BookDelta, BookSnapshot, Control, Heartbeat, encode
from tickmesh.bus.subscriber import Subscriber
from tickmesh.bus.topics import topic
from tickmesh.consumers.books.builder import BOOK_KINDS, Builder, Settings
from tests.books import apply_levels

PROVIDER = "feed"
SYMBOLS = ("A", "B", "C")
EXAMPLES = int(os.environ.get("TICKMESH_PROPERTY_EXAMPLES", "40"))
_endpoints = itertools.count()

Side = dict[float, float]
bid_prices = st.sampled_from([1.0, 2.0, 3.0, 4.0])  # bids below asks: never crossed
ask_prices = st.sampled_from([6.0, 7.0, 8.0, 9.0])
sizes = st.sampled_from([0.0, 1.0, 2.5, 0.46989847])
fates = st.sampled_from(["send"] * 6 + ["lose", "twice"])


@dataclass
class Life:
    """One publisher process: its epoch, numbering, and the books it sent."""

    epoch: int
    seqs: Counter = field(default_factory=Counter)  # topic -> last sequence number
    generations: Counter = field(default_factory=Counter)  # symbol -> snapshots sent
    books: dict[str, tuple[Side, Side]] = field(default_factory=dict)  # the truth


class BooksUnderABadBus(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.context = zmq.Context()
        endpoint = f"inproc://books-{next(_endpoints)}"
        self.wire = self.context.socket(zmq.PUB)
        self.wire.bind(endpoint)
        self.sub = Subscriber(endpoint, [f"{k}.{PROVIDER}" for k in BOOK_KINDS]
                              + [f"status.{PROVIDER}"], context=self.context,
                              heartbeat_timeout=10**6)
        self.published: list = []
        ctx = SimpleNamespace(settings=Settings(snapshot_endpoint="ipc:///nowhere"),
                              publisher=SimpleNamespace(publish=self.published.append),
                              counts=Counter(), name="books")
        self.builder = Builder(ctx)
        self.now = 0.0
        self.sub.on_gap = lambda gap: self.builder.on_gap(gap, self.now)
        self.sub.on_publisher = lambda gone: self.builder.on_publisher(gone, self.now)
        self.life = Life(epoch=1_000)
        self.lives = [self.life]
        self.outbox: list[tuple[str, bytes, bytes, tuple | None]] = []  # symbol, frames, truth
        self.truth: dict[tuple[bytes, int, int], tuple] = {}  # (topic, epoch, seq) -> truth
        self.handed: dict[tuple[str, int], tuple] = {}  # (symbol, epoch) -> truth last handed
        self._connect()

    def _connect(self) -> None:
        """Until the subscription is in: probes on a topic of no book."""
        probe = topic("status", PROVIDER, "probe")
        for _ in range(1000):
            self.wire.send_multipart([probe, b"\x80"])  # an empty map: malformed, dropped
            if self.sub.recv_ready(1) == [] and self.sub.malformed:
                return
        raise AssertionError("the subscription never came in")

    # --- what the publisher sends ---------------------------------------------------------

    def _stamp(self, life: Life, event, symbol: str, truth: tuple | None) -> tuple[bytes, bytes]:
        kind = event.__struct_config__.tag
        name = topic(kind, event.provider, event.symbol)
        if kind == "book_snapshot":  # as bus.publisher stamps it
            event.delta_seq = life.seqs[topic("book_delta", event.provider, event.symbol)]
        life.seqs[name] += 1
        event.seq, event.epoch = life.seqs[name], life.epoch
        if truth is not None:
            self.truth[name, life.epoch, event.seq] = truth
        return name, encode(event)

    def _send(self, life: Life, event, symbol: str, fate: str) -> None:
        truth = None
        if symbol in life.books:
            bids, asks = life.books[symbol]
            truth = (life.generations[symbol], dict(bids), dict(asks))
        frames = self._stamp(life, event, symbol, truth)
        copies = {"send": 1, "lose": 0, "twice": 2}[fate]
        self.outbox += [(symbol, *frames)] * copies

    @rule(symbol=st.sampled_from(SYMBOLS), bids=st.dictionaries(bid_prices, sizes.filter(bool)),
          asks=st.dictionaries(ask_prices, sizes.filter(bool)), fate=fates)
    def snapshot(self, symbol: str, bids: Side, asks: Side, fate: str) -> None:
        life = self.life
        life.generations[symbol] += 1
        life.books[symbol] = (dict(bids), dict(asks))
        self._send(life, self._snapshot_event(symbol, life), symbol, fate)

    def _snapshot_event(self, symbol: str, life: Life) -> BookSnapshot:
        bids, asks = life.books[symbol]
        return BookSnapshot(provider=PROVIDER, symbol=symbol, ts_event=1, ts_recv=1,
                            bids=sorted(bids.items(), reverse=True), asks=sorted(asks.items()),
                            generation=life.generations[symbol])

    @precondition(lambda self: self.life.books)
    @rule(data=st.data(), bids=st.dictionaries(bid_prices, sizes),
          asks=st.dictionaries(ask_prices, sizes), fate=fates)
    def delta(self, data, bids: Side, asks: Side, fate: str) -> None:
        symbol = data.draw(st.sampled_from(sorted(self.life.books)))
        apply_levels(self.life.books[symbol], bids.items(), asks.items())
        self._send(self.life, BookDelta(provider=PROVIDER, symbol=symbol, ts_event=1, ts_recv=1,
                                        bids=list(bids.items()), asks=list(asks.items()),
                                        generation=self.life.generations[symbol]), symbol, fate)

    @precondition(lambda self: len(self.lives) > 1)
    @rule(symbol=st.sampled_from(SYMBOLS), bid=bid_prices)
    def stale_publisher(self, symbol: str, bid: float) -> None:
        """An older life (a replay of an earlier recording, a rogue) sends a snapshot."""
        old = self.lives[0]
        old.generations[symbol] += 1
        old.books[symbol] = ({bid: 1.0}, {9.0: 1.0})
        self._send(old, self._snapshot_event(symbol, old), symbol, "send")

    @rule(final=st.booleans())
    def restart(self, final: bool) -> None:
        """The publisher stops (a final heartbeat) or is killed (none); a new life starts."""
        if final:
            self.flush()
            beat = Heartbeat(provider=PROVIDER, ts_event=1, ts_recv=1, pid=1, final=True)
            self.wire.send_multipart(self._stamp(self.life, beat, "", None))
        self.life = Life(epoch=self.life.epoch + 1_000)
        self.lives.append(self.life)

    @rule(data=st.data())
    def flush(self, data=None) -> None:
        """Send what is waiting, the symbols' messages interleaved at random (each symbol's
        own order kept)."""
        queues = {s: [m for m in self.outbox if m[0] == s] for s in SYMBOLS}
        self.outbox.clear()
        while any(queues.values()):
            ready = [s for s in SYMBOLS if queues[s]]
            symbol = data.draw(st.sampled_from(ready)) if data else ready[0]
            _symbol, name, payload = queues[symbol].pop(0)
            self.wire.send_multipart([name, payload])

    # --- what the builder does ------------------------------------------------------------

    @rule(size=st.integers(1, 20))
    def read(self, size: int) -> None:
        self._read(size)

    def _read(self, size: int) -> list:
        batch = self.sub.recv_ready(size)
        for event in batch:
            truth = self.truth.get((topic(event.__struct_config__.tag, PROVIDER, event.symbol),
                                    event.epoch, event.seq))
            if truth is not None:
                self.handed[event.symbol, event.epoch] = truth
        self.builder.on_batch(batch, self.now)
        return batch

    @rule(seconds=st.sampled_from([0.5, 3.0, 40.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.builder.tick(self.now)

    @rule()
    def answer_resyncs(self) -> None:
        """The running publisher answers each resync request with a fresh snapshot."""
        asked = {e.symbol for e in self.published if isinstance(e, Control)}
        self.published.clear()
        for symbol in sorted(asked & set(self.life.books)):
            self.life.generations[symbol] += 1
            self._send(self.life, self._snapshot_event(symbol, self.life), symbol, "send")

    # --- what must hold -------------------------------------------------------------------

    @invariant()
    def a_live_book_is_the_book_its_publisher_sent(self) -> None:
        for (provider, symbol), machine in self.builder.books.items():
            if not machine.live:
                continue
            epoch, generation = machine.version
            truth = self.handed.get((symbol, epoch))
            assert truth is not None, f"{symbol} live from a publisher it was never handed"
            assert (generation, machine.book.bids.levels, machine.book.asks.levels) == truth, \
                f"{symbol} live but not the book its publisher sent"

    def teardown(self) -> None:
        try:
            self._converges()
        finally:
            self.sub.close()
            self.wire.close(linger=0)
            self.context.term()

    def _converges(self) -> None:
        """With the bus behaving from now on, every book of the running publisher ends live
        and right (one more delta each reveals any loss nothing revealed yet)."""
        for symbol in sorted(self.life.books):
            self.life.books[symbol][0][1.0] = 1.0
            self._send(self.life, BookDelta(provider=PROVIDER, symbol=symbol, ts_event=1,
                                            ts_recv=1, bids=[(1.0, 1.0)], asks=[],
                                            generation=self.life.generations[symbol]),
                       symbol, "send")
        for _ in range(12):
            self.flush()
            while self._read(1000) or self.sub._pending:
                pass
            self.time_passes(40.0)
            self.answer_resyncs()
        for symbol, (bids, asks) in self.life.books.items():
            machine = self.builder.books[PROVIDER, symbol]
            assert machine.live and machine.version[0] == self.life.epoch, \
                f"{symbol} did not come back: {machine.state} ({machine.message})"
            assert (machine.book.bids.levels, machine.book.asks.levels) == (bids, asks)


BooksUnderABadBus.TestCase.settings = settings(max_examples=EXAMPLES, stateful_step_count=40)
test_books_under_a_bad_bus = BooksUnderABadBus.TestCase
