"""Subscriber SDK: receive events by topic pattern, and learn of every message you missed.

    sub = Subscriber("ipc:///tmp/tickmesh-0/subscribe", ["trade.alpaca.AAPL", "quote.*.*"])
    for event in sub:
        print(event.symbol, event.price)

Gaps are tracked per topic and publisher epoch: a skipped sequence number on a topic is a gap
(counted in `gaps` and `missed`, reported to `on_gap`); a new epoch is a publisher restart.
A jump of more than MAX_GAP numbers cannot be lost messages (no subscriber queue holds that
many of one topic): it is counted as a restart of the topic's numbering (`restarts`), not
as a gap, so that one forged or corrupt sequence number cannot make `missed` nonsense.

Every event is checked against its topic: its kind, provider and symbol must be the ones the
topic names (`kind.provider.SYMBOL|`, as every publisher writes it). A message that does not
decode, or whose event does not match its topic (a trade under a quote topic), is dropped and
counted in `malformed`: a consumer of `quote.*` gets only Quotes.

`raw=True`: deliver each message undecoded, as a `RawMessage` (topic, payload bytes, and the
epoch and sequence number read from the payload for gap tracking), e.g. to record it. Raw
messages are delivered as they came: their payload is not checked against the topic.

`fill_gaps=True`: on a gap, ask the recorder (bus.gapfill; `gapfill_endpoint`, by default the
`gapfill` endpoint beside the bus's ipc:// subscribe endpoint) for exactly the missed messages
and deliver them, in order, before the event that revealed the gap. `filled` counts them;
`on_gap` is then told only of what the recorder did not have (or all of it if no recorder
answered). `gaps` and `missed` still count every gap seen.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from collections import deque
from typing import AsyncIterator, Callable, Iterable, Iterator, NamedTuple

import msgspec
import zmq
import zmq.asyncio
import zmq.backend

from bus import events, sockets
from bus.gapfill import GapFiller, GapFillUnavailable, default_endpoint
from bus.topics import Pattern


@dataclass(frozen=True)
class Gap:
    topic: bytes
    expected: int  # the sequence number that should have come
    received: int  # the one that came; received - expected messages were lost
    epoch: int = 0  # the publisher epoch of both

    @property
    def missed(self) -> int:
        return self.received - self.expected


BATCH = 256  # messages an async reader takes at most at one wake-up (`batches`)
MAX_GAP = 10_000_000
"""The most messages one gap may count. More than a subscriber's queue (the high-water mark,
sockets.DEFAULT_HWM) could ever lose on one topic at a time by orders of magnitude: a larger
jump is a restart of the topic's numbering (or a forgery), not lost messages."""


class GapTracker:
    """Per-topic sequence bookkeeping, shared by the sync and async subscribers."""

    def __init__(self, on_gap: Callable[[Gap], None] | None = None) -> None:
        self.on_gap = on_gap
        self.gaps = 0
        self.missed = 0
        self.restarts = 0
        self._last: dict[bytes, tuple[int, int]] = {}  # topic -> (epoch, last seq)

    def check(self, topic: bytes, epoch: int, seq: int) -> Gap | None:
        """Note one message; the gap it reveals, if any (also counted and told to on_gap)."""
        previous = self._last.get(topic)
        self._last[topic] = (epoch, seq)
        if previous is None:
            return None
        last_epoch, last_seq = previous
        if epoch != last_epoch or seq - last_seq - 1 > MAX_GAP:
            self.restarts += 1
        elif seq > last_seq + 1:
            gap = Gap(topic, last_seq + 1, seq, epoch)
            self.gaps += 1
            self.missed += gap.missed
            if self.on_gap is not None:
                self.on_gap(gap)
            return gap
        return None

    def position(self, topic: bytes) -> tuple[int, int] | None:
        """(epoch, last sequence number) seen on `topic`, or None."""
        return self._last.get(topic)


class RawMessage(NamedTuple):
    """A message as received (raw mode): its two frames, and the epoch and sequence number read
    from the payload (0 and 0 if they could not be read: such a message is not gap-tracked)."""

    topic: bytes
    payload: bytes
    epoch: int
    seq: int


class _Stamp(msgspec.Struct, gc=False):
    """Only the keys gap tracking needs; msgspec skips the rest of the map unread."""

    q: int = 0
    e: int = 0


_stamp = msgspec.msgpack.Decoder(_Stamp).decode


def _topic_of(event: events.Event) -> bytes:
    """The topic a publisher puts `event` under (bus.topics.topic, without its checks: an
    event whose symbol holds a `|` matches no topic it can arrive on anyway)."""
    return f"{event.__struct_config__.tag}.{event.provider}.{event.symbol}|".encode()


class _SubscriberBase:
    _context_class: type[zmq.Context] = zmq.Context

    def __init__(
        self,
        endpoint: str,
        patterns: Iterable[str],
        *,
        rcvhwm: int = sockets.DEFAULT_SUBSCRIBER_HWM,
        on_gap: Callable[[Gap], None] | None = None,
        context: zmq.Context | None = None,
        raw: bool = False,
        fill_gaps: bool = False,
        gapfill_endpoint: str | None = None,
    ) -> None:
        context = context or self._context_class.instance()
        self.patterns = [Pattern.parse(p) for p in patterns]
        self.raw = raw
        self.on_gap = on_gap
        self.tracker = GapTracker(None if fill_gaps else on_gap)
        self.received = 0
        self.malformed = 0
        self.filled = 0
        self._filler = GapFiller(gapfill_endpoint or default_endpoint(endpoint)) if fill_gaps \
            else None
        self._pending: deque = deque()  # filled messages, then the one that revealed the gap
        self._unfilled: Gap | None = None  # a gap to fill before delivering _pending
        self._client_filter = [p for p in self.patterns if p.needs_client_filter]
        self._all_by_prefix = len(self._client_filter) < len(self.patterns)
        self._socket = sockets.subscriber(endpoint, sorted({p.prefix for p in self.patterns}),
                                          rcvhwm, context)
        # The Cython recv, without pyzmq's Python wrapper, called with copy=False for the topic:
        # a Frame, whose `more` is far cheaper than getsockopt(RCVMORE) (~2 us, more than the
        # rest of a message).
        self._recv = zmq.backend.Socket.recv.__get__(self._socket)

    @property
    def socket(self) -> zmq.Socket:
        """The SUB socket, to register with a zmq.Poller beside other sockets."""
        return self._socket

    @property
    def gaps(self) -> int:
        return self.tracker.gaps

    @property
    def missed(self) -> int:
        return self.tracker.missed

    def _wanted(self, topic: bytes) -> bool:
        """Finish filtering what a prefix subscription could not express."""
        if not self._client_filter:
            return True
        try:
            if any(p.matches(topic) for p in self._client_filter):
                return True
            return self._all_by_prefix and any(
                not p.needs_client_filter and topic.startswith(p.prefix) for p in self.patterns
            )
        except (ValueError, UnicodeDecodeError):
            return False

    def _accept(self, topic: bytes, payload: bytes) -> events.AnyEvent | RawMessage | None:
        """The message to deliver (None: not wanted, or malformed); on a gap to fill, it waits
        in `_pending` behind the fill, and `_unfilled` says so."""
        if self._client_filter and not self._wanted(topic):
            return None
        message = self._convert(topic, payload)
        if message is None:
            return None
        self.received += 1
        if message.epoch or message.seq:
            gap = self.tracker.check(topic, message.epoch, message.seq)
            if gap is not None and self._filler is not None:
                self._unfilled = gap
                self._pending.append(message)
                return None
        return message

    def _convert(self, topic: bytes, payload: bytes) -> events.AnyEvent | RawMessage | None:
        try:
            if not self.raw:
                event = events.decode(payload)
                if topic != _topic_of(event):
                    self.malformed += 1  # e.g. a Trade under a quote topic
                    return None
                return event
            stamp = _stamp(payload)
            return RawMessage(topic, payload, stamp.e, stamp.q)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.malformed += 1
            return RawMessage(topic, payload, 0, 0) if self.raw else None

    def _drain(self, socket: zmq.Socket, limit: int) -> list[events.AnyEvent | RawMessage]:
        """Up to `limit` wanted messages that have already arrived at `socket` (a blocking
        socket on this subscriber's), without waiting."""
        recv = zmq.backend.Socket.recv.__get__(socket)  # as self._recv, on `socket`
        batch, accept, noblock = [], self._accept, zmq.NOBLOCK
        try:
            while len(batch) < limit:
                frame = recv(noblock, False)
                if not frame.more:
                    self.malformed += 1
                    continue
                message = accept(frame.bytes, recv())
                if message is not None:
                    batch.append(message)
        except zmq.Again:
            pass
        return batch

    def _fill(self, gap: Gap) -> None:
        """Put the recorded messages of `gap` in front of `_pending`; tell on_gap what is left."""
        try:
            fill = self._filler.fetch(gap.topic, gap.epoch, gap.expected, gap.received - 1)
        except GapFillUnavailable:
            fill = None
        filled = []
        for payload in fill.payloads if fill else ():
            message = self._convert(gap.topic, payload)
            if message is not None and message.epoch == gap.epoch:
                filled.append(message)
        self.filled += len(filled)
        self._pending.extendleft(reversed(filled))
        if self.on_gap is not None:
            missing = fill.missing if fill else [(gap.expected, gap.received - 1)]
            for first, last in missing:
                self.on_gap(Gap(gap.topic, first, last + 1, gap.epoch))

    def close(self) -> None:
        self._socket.close(linger=0)
        if self._filler is not None:
            self._filler.close()


class Subscriber(_SubscriberBase):
    """Blocking subscriber; iterate it, or call recv() with a timeout."""

    def recv(self, timeout: float | None = None) -> events.AnyEvent | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call, however many unwanted messages arrive meanwhile)."""
        if self._unfilled is not None:
            gap, self._unfilled = self._unfilled, None
            self._fill(gap)
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        recv, accept = self._recv, self._accept
        while True:
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if not self._socket.poll(int(left * 1000)):
                    return None
            frame = recv(0, False)
            if not frame.more:
                self.malformed += 1
                continue
            event = accept(frame.bytes, recv())
            if event is not None:
                return event
            if self._unfilled is not None:
                return self.recv(timeout)

    def recv_ready(self, limit: int) -> list[events.AnyEvent | RawMessage]:
        """Up to `limit` wanted messages that have already arrived, without waiting: a batch
        for readers that keep up with the whole bus (e.g. the recorder)."""
        if self._filler is not None:
            batch = []
            while len(batch) < limit and (message := self.recv(timeout=0)) is not None:
                batch.append(message)
            return batch
        return self._drain(self._socket, limit)

    def __iter__(self) -> Iterator[events.AnyEvent]:
        while True:
            event = self.recv()
            if event is not None:
                yield event

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSubscriber(_SubscriberBase):
    """The same, for asyncio: `event = await sub.recv()` or `async for event in sub`."""

    _context_class = zmq.asyncio.Context
    _shadow: zmq.Socket | None = None

    async def recv(self, timeout: float | None = None) -> events.AnyEvent | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call)."""
        if timeout is None:
            return await self._next()
        try:
            return await asyncio.wait_for(self._next(), timeout)
        except TimeoutError:
            return None

    async def recv_batch(self, limit: int) -> list[events.AnyEvent]:
        """The next wanted event (waiting for it, as `recv` does) and, behind it, up to
        `limit` in all of those that have already arrived: one wake-up for a burst, instead of
        an asyncio future per message (measured: ~45% of the order-book builder's time)."""
        batch = [await self._next()]
        if self._filler is None and not self._pending and limit > 1:
            if self._shadow is None:  # a blocking socket on the same libzmq socket
                self._shadow = zmq.Socket.shadow(self._socket.underlying)
            batch += self._drain(self._shadow, limit - 1)
        return batch

    async def batches(self, limit: int = BATCH) -> AsyncIterator[list[events.AnyEvent]]:
        """`recv_batch(limit)` for ever; after each batch is handled, the loop's other tasks
        run (a ready socket never suspends `recv_batch`: a busy bus would starve them)."""
        while True:
            yield await self.recv_batch(limit)
            await asyncio.sleep(0)

    async def _next(self) -> events.AnyEvent:
        while True:
            if self._unfilled is not None:
                gap, self._unfilled = self._unfilled, None
                await asyncio.to_thread(self._fill, gap)
            if self._pending:
                return self._pending.popleft()
            frames = await self._socket.recv_multipart()
            if len(frames) != 2:
                self.malformed += 1
                continue
            event = self._accept(frames[0], frames[1])
            if event is not None:
                return event

    def __aiter__(self) -> "AsyncSubscriber":
        return self

    async def __anext__(self) -> events.AnyEvent:
        return await self._next()
