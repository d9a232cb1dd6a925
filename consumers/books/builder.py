"""The order-book builder: every provider's L2 books, rebuilt from the bus, each either correct
or visibly stale, never silently wrong.

    python -m tickmesh.consumers.books          (supervised; settings below)
    tickmesh book PROVIDER SYMBOL [--depth N] [--json]   (asks its snapshot service)

Subscribes to book_snapshot, book_delta and status of the configured providers and symbols and
keeps one book per (provider, symbol), with no provider-specific code: each book's life is a
consumers.books.state.BookMachine (its rules are there), its levels a consumers.books.orderbook
.OrderBook. Publishes, with the process's publisher:
- `bbo` when a live book's best bid or ask changed (0.0 for an empty side): at most once per
  book per batch of events read off the bus (AsyncSubscriber.batches), after the batch, with
  the top the book has then;
- `depth`, the top `depth_levels` of each live book that changed, `depth_rate` times a second;
- `book_status` on every change of a book's state (or of its message: a resync asked again);
- `control` "resync" to the provider when a book needs a fresh snapshot.
A late joiner asks the snapshot service (consumers.books.snapshots) at `snapshot_endpoint` for a
whole book at once.

What the bus tells it, it acts on in order (bus.subscriber): a gap on a book topic makes that
book stale; a publisher gone silent (no heartbeat for `heartbeat_timeout` s) or stopped makes
every book it published stale at once ("handler silent for 3.0 s", "handler stopped"), until a
fresh snapshot. At most `max_books` books are kept: a book beyond them is refused (counted in
books_refused, logged once). The resync timer looks only at the books that wait for a snapshot.

Metrics: books{state}, book_resyncs{provider,reason}, books_crossed{provider},
book_deltas_ignored{reason}, book_snapshots_ignored{reason}, books_refused, book_requests
{outcome}, and the consumers' events_received, bus_gaps, bus_messages_missed, bus_duplicates,
bus_stale_epoch, publishers_gone{how}.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tickmesh.bus import events, topics
from tickmesh.bus.sequence import PublisherSilent, PublisherStopped
from tickmesh.bus.subscriber import AsyncSubscriber, Gap
from tickmesh.consumers.books.snapshots import BookService
from tickmesh.consumers.books.state import OLD_SNAPSHOT, STALE, Actions, BookMachine, Timing
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import subscriber_counts
from tickmesh.runtime.settings import SettingsError, Strings, require

BOOK_KINDS = ("book_snapshot", "book_delta")
TICK_SECONDS = 0.1  # how often overdue resyncs are looked for

Key = tuple[str, str]  # (provider, symbol)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The builder's settings table. `snapshot_endpoint` is required (there is no default: it
    belongs in the run dir, e.g. "ipc://{run_dir}/books", which the config expands)."""

    snapshot_endpoint: str
    providers: Strings = ("*",)
    symbols: Strings = ("*",)
    depth_levels: int = 10
    depth_rate: float = 1.0  # depth events per second per changed book; 0: none
    resync_timeout: float = 2.0  # seconds for a snapshot to answer a resync before asking again
    resync_max: float = 30.0  # the longest wait between two requests
    rcvhwm: int = 0  # messages the subscriber queues before dropping; 0: bus.receive_hwm
    max_books: int = 20_000  # books kept at most; a book event beyond them is dropped, counted
    heartbeat_timeout: float = 3.0  # seconds without a publisher's heartbeat: its books stale

    def __post_init__(self) -> None:
        require(self.snapshot_endpoint.split("://")[0] in ("ipc", "tcp"), "snapshot_endpoint",
                "an ipc:// or tcp:// endpoint", self.snapshot_endpoint)
        require(self.depth_levels > 0, "depth_levels", "an integer > 0", self.depth_levels)
        require(self.depth_rate >= 0, "depth_rate", "a number >= 0", self.depth_rate)
        require(self.resync_timeout > 0, "resync_timeout", "a number > 0", self.resync_timeout)
        require(self.resync_max >= 2 * self.resync_timeout, "resync_max",
                f"a number >= 2 * resync_timeout ({2 * self.resync_timeout:g})", self.resync_max)
        require(self.rcvhwm >= 0, "rcvhwm", "an integer >= 0", self.rcvhwm)
        require(self.max_books > 0, "max_books", "an integer > 0", self.max_books)
        require(0 < self.heartbeat_timeout < float("inf"), "heartbeat_timeout",
                "a number of seconds > 0", self.heartbeat_timeout)
        try:
            patterns(self)
        except topics.TopicError as exc:
            raise SettingsError(f"settings.providers/symbols: {exc}") from None

    @property
    def timing(self) -> Timing:
        return Timing(self.resync_timeout, self.resync_max)

    def listen_endpoints(self) -> dict[str, str]:
        """Where it listens: checked against the config's other listeners (runtime.check)."""
        return {"snapshot_endpoint": self.snapshot_endpoint}


def patterns(settings: Settings) -> list[str]:
    """What to subscribe to: the book kinds of each provider's symbols, and its statuses."""
    out = []
    for provider in settings.providers:
        out += [f"{kind}.{provider}.{symbol}" for kind in BOOK_KINDS for symbol in settings.symbols]
        out.append(f"status.{provider}")
    for pattern in out:
        topics.Pattern.parse(pattern)
    return out


class Builder:
    """The books and what to publish about them; fed by `work`'s tasks."""

    def __init__(self, ctx: process.ProcessContext[Settings]) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.timing = ctx.settings.timing
        self.books: dict[Key, BookMachine] = {}
        self.waiting: set[Key] = set()  # books with a resync outstanding: the timer's work
        self.states: Counter = Counter({state: 0 for state in events.BOOK_STATES})
        self.bbo: dict[Key, tuple] = {}  # the last top published, while live
        self.changed: set[Key] = set()  # since the last depth
        # changed in this batch, in order: their bbo is published after it
        self.applied: dict[Key, None] = {}
        self._symbols = None if "*" in ctx.settings.symbols else set(ctx.settings.symbols)

    def book(self, key: Key) -> BookMachine | None:
        """The book of `key`, made on first sight; None if max_books are kept already."""
        machine = self.books.get(key)
        if machine is None:
            if len(self.books) >= self.settings.max_books:
                self._refuse(key)
                return None
            machine = self.books[key] = BookMachine(self.timing)
            self.states[STALE] += 1
        return machine

    def _refuse(self, key: Key) -> None:
        self.ctx.counts["books_refused"] += 1
        if self.ctx.counts["books_refused"] == 1:
            log().warning("max_books reached: further books are refused (books_refused)",
                          max_books=self.settings.max_books, provider=key[0], symbol=key[1])

    def on_batch(self, batch: list[events.AnyEvent], now: float) -> None:
        """The events of one read off the bus, then the bbo of each live book they changed (a
        book that leaves live during the batch gets it just before its status: `_status`)."""
        for event in batch:
            self.on_event(event, now)
        for key in self.applied:
            machine = self.books[key]
            if machine.live:
                self._bbo(key, machine)
        self.applied.clear()

    def on_event(self, event: events.AnyEvent, now: float) -> None:
        if isinstance(event, events.Status):
            self.on_status(event, now)
            return
        key = (event.provider, event.symbol)
        machine = self.book(key)
        if machine is None:
            return
        if isinstance(event, events.BookSnapshot):
            self.handle(key, machine.snapshot(event, now))
        elif isinstance(event, events.BookDelta):
            self.handle(key, machine.delta(event, now))

    def on_status(self, status: events.Status, now: float) -> None:
        if status.symbol:
            key = (status.provider, status.symbol)
            if status.state == "resyncing" and self._wanted(status.symbol) \
                    and (machine := self.book(key)) is not None:
                self.handle(key, machine.resyncing(now))
            return
        if status.state not in ("disconnected", "subscribed"):
            return
        for key, machine in list(self.books.items()):
            if key[0] == status.provider:
                up = status.state == "subscribed"
                self.handle(key, machine.provider_up(now) if up else machine.disconnected(now))

    def on_gap(self, gap: Gap, now: float) -> None:
        self.ctx.counts["bus_gaps"] += 1
        self.ctx.counts["bus_messages_missed"] += gap.missed
        kind, provider, symbol = topics.split(gap.topic)
        if kind in BOOK_KINDS and (provider, symbol) in self.books:
            self.handle((provider, symbol), self.books[provider, symbol].gap(gap.missed, now))

    def on_publisher(self, notice: PublisherSilent | PublisherStopped, now: float) -> None:
        """A publisher went silent or stopped: every book it published is stale (rule 7)."""
        stopped = isinstance(notice, PublisherStopped)
        self.ctx.counts["publishers_gone", "stopped" if stopped else "silent"] += 1
        message = "handler stopped" if stopped else \
            f"handler silent for {self.settings.heartbeat_timeout:.1f} s"
        for key, machine in self.books.items():
            if machine.seen[0] == notice.epoch:
                self.handle(key, machine.publisher_gone(message, now))

    def tick(self, now: float) -> None:
        """Ask again where an outstanding request is overdue (only the books that wait)."""
        for key in list(self.waiting):
            self.handle(key, self.books[key].tick(now))
        for state, count in self.states.items():
            self.ctx.counts["books", state] = count

    def publish_depth(self) -> None:
        levels = self.settings.depth_levels
        for key in self.changed:
            machine = self.books[key]
            if machine.live:
                bids, asks = machine.book.top(levels)
                self._publish(events.Depth, key, machine, bids=bids, asks=asks)
        self.changed.clear()

    def handle(self, key: Key, out: Actions) -> None:
        """Carry out what a book's machine said."""
        machine = self.books[key]
        counts = self.ctx.counts
        if out.ignored:
            ignored = "book_snapshots_ignored" if out.ignored == OLD_SNAPSHOT \
                else "book_deltas_ignored"
            counts[ignored, out.ignored] += 1
        if out.status is not None or out.resync:
            (self.waiting.add if machine.retry_at is not None else self.waiting.discard)(key)
        if out.status is not None:
            self._status(key, machine, *out.status)
        if out.resync:
            counts["book_resyncs", key[0], out.resync] += 1
            now = time.time_ns()
            self.ctx.publisher.publish(events.Control(
                provider=key[0], symbol=key[1], ts_event=now, ts_recv=now, action="resync",
                sender=self.ctx.name))
        if out.applied:
            self.changed.add(key)
            self.applied[key] = None

    def _status(self, key: Key, machine: BookMachine, state: str, message: str) -> None:
        self.states[machine.previous] -= 1
        self.states[state] += 1
        if machine.previous == "live" and state not in ("live", "crossed") \
                and key in self.applied:
            del self.applied[key]
            self._bbo(key, machine)  # the top it had while live this batch, before it leaves
        if state != "live":
            self.bbo.pop(key, None)
        if state == "crossed":
            self.ctx.counts["books_crossed", key[0]] += 1
        now = time.time_ns()
        self.ctx.publisher.publish(events.BookStatus(
            provider=key[0], symbol=key[1], ts_event=now, ts_recv=now, state=state,
            message=message))

    def _bbo(self, key: Key, machine: BookMachine) -> None:
        top = (machine.book.best_bid() or (0.0, 0.0), machine.book.best_ask() or (0.0, 0.0))
        if self.bbo.get(key) != top:
            self.bbo[key] = top
            (bid_price, bid_size), (ask_price, ask_size) = top
            self._publish(events.Bbo, key, machine, bid_price=bid_price, bid_size=bid_size,
                          ask_price=ask_price, ask_size=ask_size)

    def _publish(self, kind: type, key: Key, machine: BookMachine, **fields: Any) -> None:
        ts_event = machine.last.ts_event if machine.last else 0
        self.ctx.publisher.publish(kind(provider=key[0], symbol=key[1], ts_event=ts_event,
                                        ts_recv=time.time_ns(), **fields))

    def _wanted(self, symbol: str) -> bool:
        return self._symbols is None or symbol in self._symbols


async def work(ctx: process.ProcessContext[Settings]) -> None:
    builder = Builder(ctx)

    def count_request(outcome: str) -> None:
        ctx.counts["book_requests", outcome] += 1

    service = BookService(ctx.settings.snapshot_endpoint, builder.books, count_request)
    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, patterns(ctx.settings),
                          rcvhwm=ctx.settings.rcvhwm or ctx.spec.bus.receive_hwm,
                          on_gap=lambda gap: builder.on_gap(gap, time.monotonic()),
                          on_publisher=lambda gone: builder.on_publisher(gone, time.monotonic()),
                          heartbeat_timeout=ctx.settings.heartbeat_timeout,
                          max_topics=4 * ctx.settings.max_books + 1_000)
    ctx.metrics.collect(lambda: subscriber_counts(sub))
    tasks = [asyncio.create_task(service.serve(), name="snapshot-service"),
             asyncio.create_task(_ticks(builder), name="resync-timer")]
    if ctx.settings.depth_rate > 0:
        tasks.append(asyncio.create_task(_depth(builder, ctx.settings.depth_rate), name="depth"))
    try:
        await _read(sub, builder, ctx)
    finally:
        for task in tasks:
            task.cancel()
        sub.close()
        service.close()


async def _read(sub: AsyncSubscriber, builder: Builder, ctx: process.ProcessContext) -> None:
    counts = ctx.counts
    async for batch in sub.batches():  # the service and the timers run between batches
        counts["events_received"] += len(batch)
        builder.on_batch(batch, time.monotonic())


async def _ticks(builder: Builder) -> None:
    while True:
        builder.tick(time.monotonic())
        await asyncio.sleep(TICK_SECONDS)


async def _depth(builder: Builder, rate: float) -> None:
    while True:
        await asyncio.sleep(1 / rate)
        builder.publish_depth()


def main() -> None:
    process.run(work, Settings)


if __name__ == "__main__":
    main()
