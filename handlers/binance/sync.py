"""Keeping one symbol's local order book in step with Binance's diff-depth stream, exactly
as Binance documents it ("How to manage a local order book correctly"). Pure: the protocol
feeds it depth events and REST snapshots and acts on the Step each returns.

The book itself is built only to be published whole (SNAPSHOT: the snapshot with the buffered
events applied); once live, the stream's own ids are all the rules need (every event's levels
are absolute sizes, passed on as they come), so only the last u is kept, not the book.

    idle --begin--> buffering --(snapshot fits the buffered events)--> live
    buffering --(snapshot older than the stream)--> buffering (REFETCH: ask for another)
    buffering/live --(a gap, a crossed book)--> idle (RESYNC: the protocol backs off, then
                                                      calls begin() again)
    any --stop--> idle

The rules:
- idle: depth events are ignored (not subscribed on this connection yet, or waiting for the
  backoff of a resync to end).
- buffering: every depth event is buffered (at most MAX_BUFFERED, the oldest dropped first)
  while a snapshot is fetched. When one arrives (lastUpdateId L), buffered events with u <= L
  are dropped; if none is left it is held until the next event comes. The first event left
  must satisfy U <= L + 1 <= u: if its U > L + 1 the snapshot is older than the stream
  (REFETCH; after MAX_STALE such snapshots in a row, RESYNC). Each later buffered event's U
  must be the previous u + 1 (else RESYNC). A book crossed after that is a RESYNC too.
  Otherwise the book is the snapshot with the buffered events applied: SNAPSHOT, and live.
- live: an event with u <= the last applied u is old and ignored; one whose U is not the
  last u + 1 means events were missed: RESYNC; otherwise its levels are passed on: DELTA.
- Every RESYNC drops the buffer (and a held snapshot) and goes idle.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import NamedTuple

from tickmesh.handlers.common.book import Book, Levels

MAX_BUFFERED = 2000
"""Depth events kept while a snapshot is on its way (100 ms each: over 3 minutes' worth)."""
MAX_STALE = 3


class Phase(StrEnum):
    IDLE = "idle"
    BUFFERING = "buffering"
    LIVE = "live"


class Action(StrEnum):
    NOTHING = "nothing"
    SNAPSHOT = "snapshot"  # publish the whole book (these levels, best first): it is in sync
    DELTA = "delta"  # publish these levels
    REFETCH = "refetch"  # ask for another snapshot, keep buffering
    RESYNC = "resync"  # out of step: back off, then begin again


class Update(NamedTuple):
    first: int  # U
    last: int  # u
    bids: Levels
    asks: Levels


class Step(NamedTuple):
    action: Action
    bids: Levels = []
    asks: Levels = []
    reason: str = ""
    kind: str = ""  # of a RESYNC, for a counter: gap, crossed_book, stale_snapshot


NOTHING = Step(Action.NOTHING)


class DepthSync:
    def __init__(self) -> None:
        self.phase = Phase.IDLE
        self.last_id = 0  # u of the last event applied (live), or the snapshot's id
        self.buffer: deque[Update] = deque(maxlen=MAX_BUFFERED)
        self.held: tuple[int, Book] | None = None  # a snapshot waiting for events
        self.stale = 0  # snapshots in a row older than the stream

    def begin(self) -> None:
        """Start (again) from nothing: buffer the stream until a snapshot fits it."""
        self.stop()
        self.phase = Phase.BUFFERING

    def stop(self) -> None:
        self.phase = Phase.IDLE
        self.buffer.clear()
        self.held = None
        self.stale = 0

    def on_update(self, update: Update) -> Step:
        if self.phase is Phase.BUFFERING:
            self.buffer.append(update)
            return self._sync() if self.held else NOTHING
        if self.phase is Phase.LIVE:
            return self._live(update)
        return NOTHING

    def on_snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> Step:
        if self.phase is not Phase.BUFFERING:
            return NOTHING  # a late answer: the symbol was resynced or stopped meanwhile
        book = Book(bids, asks)
        if book.crossed():
            return self._resync("crossed_book", "crossed snapshot")
        self.held = (last_update_id, book)
        return self._sync()

    def _live(self, update: Update) -> Step:
        if update.last <= self.last_id:
            return NOTHING
        if update.first != self.last_id + 1:
            return self._resync("gap", f"gap: expected U={self.last_id + 1}, "
                                       f"got U={update.first}")
        self.last_id = update.last
        return Step(Action.DELTA, update.bids, update.asks)

    def _sync(self) -> Step:
        """Apply the held snapshot and the buffered events after it, if they fit."""
        assert self.held is not None
        last_id, book = self.held
        while self.buffer and self.buffer[0].last <= last_id:
            self.buffer.popleft()
        if not self.buffer:
            return NOTHING  # wait for the next event
        if self.buffer[0].first > last_id + 1:
            return self._stale(last_id)
        for i, update in enumerate(self.buffer):
            if i and update.first != last_id + 1:
                return self._resync("gap", "gap in the buffered events: expected "
                                    f"U={last_id + 1}, got U={update.first}")
            book.apply(update.bids, update.asks)
            last_id = update.last
        if book.crossed():
            return self._resync("crossed_book", "crossed book after the snapshot")
        self.phase, self.last_id = Phase.LIVE, last_id
        self.buffer.clear()
        self.held = None
        self.stale = 0
        return Step(Action.SNAPSHOT, book.sorted_bids(), book.sorted_asks())

    def _stale(self, last_id: int) -> Step:
        self.held = None
        self.stale += 1
        if self.stale >= MAX_STALE:
            return self._resync("stale_snapshot",
                                f"{self.stale} snapshots in a row older than the stream")
        return Step(Action.REFETCH, reason=f"snapshot {last_id} older than the first buffered "
                                           f"event U={self.buffer[0].first}")

    def _resync(self, kind: str, reason: str) -> Step:
        self.stop()
        return Step(Action.RESYNC, reason=reason, kind=kind)
