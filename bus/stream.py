"""What the blocking and the asyncio subscribers share: the SUB socket (to `endpoint`, else to
the bus of the system running in the run dir: bus.endpoints; with two bus lines, a SUB socket
each, read in turn, and bus.lines keeping the first copy of each message), and the stream out,
in order.

`_collect` takes what is pending (bus.intake: notices, fill requests, messages held behind
them), then what has arrived at the socket, into a batch that ends before a notice or a fill
request: a notice met first is told (`on_gap`, `on_publisher`), one met after messages is told
at the next call, once the reader has handled them.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

import zmq
import zmq.backend

from tickmesh.bus import endpoints, filling, sockets
from tickmesh.bus.gapfill import Fill, GapFiller, default_endpoint
from tickmesh.bus.intake import HEARTBEATS, HELD, FillRequest, Intake
from tickmesh.bus.lines import LINE_HOLD
from tickmesh.bus.messages import Item
from tickmesh.bus.sequence import (DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_MAX_TOPICS, Gap, Notice,
                                   PublisherSilent, PublisherStopped, PublisherWatch,
                                   SequenceTracker)
from tickmesh.bus.topics import Selection

EVERYTHING = ("*",)


class Stream:
    """A subscriber without its way of waiting (Subscriber, AsyncSubscriber)."""

    _context_class: type[zmq.Context] = zmq.Context

    def __init__(
        self,
        endpoint: str | tuple[str, ...] | None = None,
        patterns: Iterable[str] = EVERYTHING,
        *,
        rcvhwm: int = sockets.DEFAULT_RECEIVE_HWM,
        on_gap: Callable[[Gap], object] | None = None,
        on_publisher: Callable[[PublisherSilent | PublisherStopped], object] | None = None,
        context: zmq.Context | None = None,
        raw: bool = False,
        fill_gaps: bool = False,
        gapfill_endpoint: str | None = None,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        accept_stale: bool = False,
        max_topics: int = DEFAULT_MAX_TOPICS,
        evict_topics: bool = False,
        line_hold: float = LINE_HOLD,
    ) -> None:
        if endpoint is None:
            endpoint = endpoints.running_bus().subscribe_endpoints
        self.endpoints = (endpoint,) if isinstance(endpoint, str) else tuple(endpoint)
        self.endpoint = self.endpoints[0]
        selection = Selection(patterns)
        self.patterns = selection.patterns
        self.raw = raw
        self.on_gap = on_gap
        self.on_publisher = on_publisher
        self.filled = 0
        watch = PublisherWatch(heartbeat_timeout) if heartbeat_timeout > 0 else None
        tracker = SequenceTracker(accept_stale=accept_stale, max_topics=max_topics,
                                  evict=evict_topics)
        self._intake = Intake(self.endpoint, selection, raw, tracker, watch, fill_gaps,
                              len(self.endpoints), line_hold)
        self.arbiter = self._intake.arbiter  # two lines: bus.lines, its counts
        self.tracker, self.watch = tracker, watch
        self._pending, self._accept = self._intake.pending, self._intake.accept
        self._caught_up = self._intake.caught_up
        self._filler = GapFiller(gapfill_endpoint or default_endpoint(self.endpoint)) \
            if fill_gaps else None
        self._told = 0  # notices told so far
        prefixes = sorted(selection.prefixes | ({HEARTBEATS} if watch is not None else set()))
        context = context or self._context_class.instance()
        self._sockets = [sockets.subscriber(end, prefixes, rcvhwm, context)
                         for end in self.endpoints]  # one per bus line
        self._socket = self._sockets[0]
        # The Cython recv, without pyzmq's Python wrapper, called with copy=False for the topic:
        # a Frame, whose `more` is far cheaper than getsockopt(RCVMORE) (~2 us, more than the
        # rest of a message).
        self._recvs = [zmq.backend.Socket.recv.__get__(sock) for sock in self._sockets]
        self._recv = self._recvs[0]
        self._first_line = 0  # with two lines, the one read first at the next call (in turn)
        self._poller = zmq.Poller()  # with two lines: waits for either (a blocking reader)
        for sock in self._sockets:
            self._poller.register(sock, zmq.POLLIN)

    @property
    def socket(self) -> zmq.Socket:
        """The SUB socket (line A's, with two lines: see `sockets`)."""
        return self._socket

    @property
    def sockets(self) -> list[zmq.Socket]:
        """The SUB sockets, one per bus line, to register with a zmq.Poller beside others."""
        return self._sockets

    @property
    def gaps(self) -> int:
        return self.tracker.gaps

    @property
    def missed(self) -> int:
        return self.tracker.missed

    @property
    def received(self) -> int:
        return self._intake.received

    @property
    def malformed(self) -> int:
        return self._intake.malformed

    def _collect(self, recvs: list[Callable], limit: int) -> list[Item]:
        """Up to `limit` messages, without waiting: what is pending, then what has arrived at
        the sockets (read with `recvs`, one per line). Stops before a notice that follows
        messages, and before a fill request (both are for the next call); tells the notices it
        meets first."""
        batch: list[Item] = []
        drain = self._drain if len(recvs) == 1 else self._drain_lines
        while len(batch) < limit:
            if self._pending:
                if not self._take(batch, limit):
                    break
            elif not drain(recvs, batch, limit):
                break
        return batch

    def _take(self, batch: list[Item], limit: int) -> bool:
        """Move pending messages into `batch`; True if the pending stream is now empty."""
        pending = self._pending
        while pending and len(batch) < limit:
            item = pending[0]
            if isinstance(item, FillRequest):
                return False
            if isinstance(item, Notice):
                if batch:
                    return False  # told at the next call, after this batch is handled
                pending.popleft()
                self._tell(item)
            else:
                batch.append(pending.popleft())
        return not pending

    def _drain(self, recvs: list[Callable], batch: list[Item], limit: int) -> bool:
        """Read arrived messages into `batch`; True if something now waits in `_pending`."""
        recv, accept, noblock = recvs[0], self._accept, zmq.NOBLOCK
        try:
            while len(batch) < limit:
                frame = recv(noblock, False)
                if not frame.more:
                    self._intake.malformed += 1
                    continue
                message = accept(frame.bytes, recv())
                if message is HELD:
                    return True
                if message is not None:
                    batch.append(message)
            return False
        except zmq.Again:
            self._caught_up()
            return bool(self._pending)

    def _drain_lines(self, recvs: list[Callable], batch: list[Item], limit: int) -> bool:
        """`_drain` for two bus lines: each line's arrived messages in turn (the first line
        read alternates), through the arbiter (bus.lines)."""
        accept, noblock, intake = self._intake.accept_from, zmq.NOBLOCK, self._intake
        intake.now = time.monotonic()
        first = self._first_line = 1 - self._first_line
        for line in (first, 1 - first):
            recv = recvs[line]
            try:
                while len(batch) < limit:
                    frame = recv(noblock, False)
                    if not frame.more:
                        intake.malformed += 1
                        continue
                    message = accept(line, frame.bytes, recv())
                    if message is HELD:
                        return True
                    if message is not None:
                        batch.append(message)
            except zmq.Again:
                continue
            intake.end_waits()  # a busy line: what waits in vain is not kept waiting
            return bool(self._pending)
        self._caught_up()
        return bool(self._pending)

    def _tell(self, notice: Notice) -> None:
        self._told += 1
        if isinstance(notice, Gap):
            if self.on_gap is not None:
                self.on_gap(notice)
        elif self.on_publisher is not None:
            self.on_publisher(notice)

    def _wait_ms(self, deadline: float | None) -> int | None:
        """How long to wait for the socket: to the deadline, or the intake's next look,
        whichever is first (None: for ever)."""
        now = time.monotonic()
        waits = [] if deadline is None else [deadline - now]
        if (look := self._intake.next_look(now)) is not None:
            waits.append(look)
        return None if not waits else max(0, int(min(waits) * 1000) + 1)

    def _fetch(self, gap: Gap) -> Fill | None:
        return filling.fetch(self._filler, gap)

    def _apply_fill(self, gap: Gap, fill: Fill | None) -> None:
        """Put what takes the place of `gap` at the front of `_pending`."""
        items, count = filling.filled(gap, fill, self._intake.convert)
        self.filled += count
        self._pending.extendleft(reversed(items))

    def close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        if self._filler is not None:
            self._filler.close()
