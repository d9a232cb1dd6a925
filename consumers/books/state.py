"""One order book's life (one provider's symbol) as a state machine: correct or visibly stale,
never silently wrong. No I/O: the builder (consumers.books) tells it what came off the bus,
with the time, and publishes what it returns.

States (bus.events.BOOK_STATES); a book starts stale, with nothing in it:
    live       the provider's book: its snapshot and every delta since, nothing lost
    stale      something was lost (a bus gap, a missed snapshot, the provider's connection):
               the last book is kept, but is not the truth
    resyncing  the handler said it is rebuilding the symbol's book (a snapshot follows)
    crossed    after applying, best bid >= best ask (crossed or locked): counted, never
               published as truth

Rules (a book's version is (epoch, generation) of the snapshot it came from; the publisher's
epoch grows across its restarts, the generation with each of its snapshots of the symbol;
versions only move forward):
 1. snapshot at or above the newest version seen: replaces the book -> live, or crossed if it
    is crossed or locked. Any state. A snapshot older than the newest version seen (an old
    publisher, a replay of an earlier recording) is ignored and counted: it never makes a book
    live, and leaves a live book as it is.
 2. delta of the book's version, while live: applied if it is the next delta the publisher
    sent after the book's snapshot (its bus sequence number follows the snapshot's delta_seq,
    or the last delta applied); crossed or locked after it -> crossed. A delta that skips
    numbers was preceded by a loss, even one no bus gap could reveal (its topic was first
    heard after the snapshot) -> stale.
    A delta of an older version is ignored; one of the book's version while not live is
    ignored too (a snapshot is awaited, and asked for again until it comes: a book that is
    not live always has a request outstanding, or is about to ask).
 3. delta of a newer version than any seen: its snapshot was missed -> stale.
 4. bus gap on the symbol's book_snapshot or book_delta topic -> stale.
 5. the handler's Status "resyncing" for the symbol -> resyncing.
 6. the provider's connection Status "disconnected" -> stale (the builder tells every book
    of that provider); "subscribed" (it is back) -> a waiting book's backoff starts over and
    it asks within resync_timeout.
 7. the publisher of the book's newest version went silent (no heartbeat for the subscriber's
    heartbeat_timeout) or stopped -> stale at once ("handler silent for 3.0 s", "handler
    stopped"); a snapshot is awaited (asked for, with the backoff below).
Only a snapshot makes a book live again.

Resync requests (the builder sends each as a Control "resync" to the provider):
 - Entering stale (rules 3, 4) or crossed after a delta asks at once, unless a request is
   outstanding (asked, or the handler resyncing, the provider disconnected or its publisher
   gone, and no snapshot since: rules 5-7 await a snapshot as the answer to a request). A newer version than any seen (rule 3) is the answer to the outstanding request,
   lost: it asks at once all the same.
 - A crossed snapshot asks again only after the wait below (a provider whose books keep coming
   crossed is not asked in a loop).
 - An outstanding request not answered by a snapshot within its wait is asked again: the n-th
   wait (n from 0, since the book was last live) is uniform in [d/2, d] with
   d = min(resync_max, 2 * resync_timeout * 2**n): never shorter than resync_timeout, growing,
   capped, jittered. Each such retry is published too (same state, a message with the attempt).
A BookStatus is published whenever the state or its message changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, NamedTuple

from tickmesh.bus.events import BookDelta, BookSnapshot
from tickmesh.consumers.books.exact import exact
from tickmesh.consumers.books.orderbook import OrderBook

LIVE, STALE, RESYNCING, CROSSED = "live", "stale", "resyncing", "crossed"
OLD_SNAPSHOT = "old_snapshot"  # the reason a snapshot is ignored (rule 1)
Version = tuple[int, int]  # (epoch, generation)


@dataclass(frozen=True)
class Timing:
    resync_timeout: float = 2.0
    resync_max: float = 30.0

    def wait(self, attempt: int, rng: Callable[[], float]) -> float:
        """The wait after the `attempt`-th request (from 0) before asking again."""
        ceiling = min(self.resync_max, 2 * self.resync_timeout * 2 ** min(attempt, 32))
        return ceiling / 2 + rng() * ceiling / 2


class Actions(NamedTuple):
    """What the builder must do: publish `status` (state, message) as a BookStatus, send a
    resync request for `resync` (its reason, for the metrics), publish the book if `applied`;
    `ignored` says why a delta was not applied."""

    status: tuple[str, str] | None = None
    resync: str = ""
    applied: bool = False
    ignored: str = ""


class BookMachine:
    def __init__(self, timing: Timing, rng: Callable[[], float] = random.random) -> None:
        self.timing = timing
        self.rng = rng
        self.book = OrderBook()
        self.state = STALE
        self.previous = STALE  # the state before the last change
        self.message = "no snapshot yet"
        self.version: Version = (0, 0)  # of the book held
        self.checksum = ""  # the venue's checksum that verified the book held (its snapshot's)
        self.next_delta: int | None = None  # the sequence number the next delta must have
        self.seen: Version = (0, 0)  # the newest of any book event
        self.last: BookSnapshot | BookDelta | None = None  # the last event applied
        self.retry_at: float | None = None  # an outstanding request is asked again then
        self.attempt = 0

    @property
    def live(self) -> bool:
        return self.state == LIVE

    def snapshot(self, event: BookSnapshot, now: float) -> Actions:
        version = (event.epoch, event.generation)
        if version < self.seen:
            return Actions(ignored=OLD_SNAPSHOT)
        self.book.apply_snapshot(event.bids, event.asks)
        self.last = event
        self.checksum = event.checksum
        self.version = self.seen = version
        self.next_delta = event.delta_seq + 1 if event.delta_seq >= 0 else None
        cross = self.book.cross()
        if cross:
            self._schedule(now)
            return Actions(self._enter(CROSSED, f"{cross} snapshot: {self._top()}"))
        self.retry_at, self.attempt = None, 0
        return Actions(self._enter(LIVE, ""), applied=True)

    def delta(self, event: BookDelta, now: float) -> Actions:
        version = (event.epoch, event.generation)
        if version > self.seen:
            self.seen = version
            if version > self.version:
                self.retry_at = None  # an outstanding request's answer was lost too
                return self._lost(f"missed the snapshot of generation {event.generation}",
                                  "missed_snapshot", now)
        if version < self.version:
            return Actions(ignored="old_generation")
        if version != self.version or not self.live:
            return Actions(ignored="not_live")
        if self.next_delta is not None and event.seq != self.next_delta:
            return self._lost(f"missed {event.seq - self.next_delta} deltas of generation "
                              f"{event.generation}", "missed_delta", now)
        self.next_delta = event.seq + 1 if self.next_delta is not None else None
        self.book.apply_delta(event.bids, event.asks)
        self.last = event
        cross = self.book.cross()
        if cross:
            return self._lost(f"{cross} after a delta: {self._top()}", "crossed", now, CROSSED)
        return Actions(applied=True)

    def gap(self, missed: int, now: float) -> Actions:
        return self._lost(f"bus gap: {missed} messages lost", "gap", now)

    def resyncing(self, now: float) -> Actions:
        self._await(now)
        return Actions(self._enter(RESYNCING, "the handler is rebuilding the book"))

    def disconnected(self, now: float) -> Actions:
        self._await(now)
        return Actions(self._enter(STALE, "the provider is disconnected"))

    def publisher_gone(self, message: str, now: float) -> Actions:
        """Rule 7: what the book holds is no longer followed."""
        self._await(now)
        return Actions(self._enter(STALE, message))

    def provider_up(self, now: float) -> Actions:
        if self.retry_at is not None:
            self.attempt = 0
            self.retry_at = min(self.retry_at, now + self.timing.resync_timeout)
        return Actions()

    def tick(self, now: float) -> Actions:
        """Time passed: ask again if an outstanding request is overdue."""
        if self.retry_at is None or now < self.retry_at:
            return Actions()
        retry = self.attempt
        wait = self._schedule(now)
        message = f"no snapshot in time: resync asked again (retry {retry}, next in {wait:.1f} s)"
        return Actions(self._enter(self.state, message), resync="timeout")

    def _lost(self, message: str, reason: str, now: float, state: str = STALE) -> Actions:
        """Enter a non-live state, asking a resync at once unless one is outstanding."""
        status = self._enter(state, message)
        if self.retry_at is not None:
            return Actions(status)
        self._schedule(now)
        return Actions(status, resync=reason)

    def _await(self, now: float) -> None:
        """A snapshot should come without asking: wait for it as for an answer."""
        if self.retry_at is None:
            self._schedule(now)

    def _schedule(self, now: float) -> float:
        """Wait for a snapshot (the next wait of the backoff) before asking again."""
        wait = self.timing.wait(self.attempt, self.rng)
        self.attempt += 1
        self.retry_at = now + wait
        return wait

    def _enter(self, state: str, message: str) -> tuple[str, str] | None:
        if (state, message) == (self.state, self.message):
            return None
        self.previous, self.state, self.message = self.state, state, message
        return state, message

    def _top(self) -> str:
        bid, ask = self.book.best_bid(), self.book.best_ask()
        return f"bid {exact(bid[0])} >= ask {exact(ask[0])}" if bid and ask else ""
