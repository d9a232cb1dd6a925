"""Subscriber SDK: receive events by topic pattern, and learn of every message you missed.

    sub = Subscriber("ipc:///tmp/tickmesh-0/subscribe", ["trade.alpaca.AAPL", "quote.*.*"])
    for event in sub:
        print(event.symbol, event.price)

Gaps are tracked per topic and publisher epoch: a skipped sequence number on a topic is a gap
(counted in `gaps` and `missed`, reported to `on_gap`); a new epoch is a publisher restart.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import msgspec
import zmq
import zmq.asyncio

from bus import events, sockets
from bus.topics import Pattern


@dataclass(frozen=True)
class Gap:
    topic: bytes
    expected: int  # the sequence number that should have come
    received: int  # the one that came; received - expected messages were lost

    @property
    def missed(self) -> int:
        return self.received - self.expected


class GapTracker:
    """Per-topic sequence bookkeeping, shared by the sync and async subscribers."""

    def __init__(self, on_gap: Callable[[Gap], None] | None = None) -> None:
        self.on_gap = on_gap
        self.gaps = 0
        self.missed = 0
        self.restarts = 0
        self._last: dict[bytes, tuple[int, int]] = {}  # topic -> (epoch, last seq)

    def check(self, topic: bytes, epoch: int, seq: int) -> None:
        previous = self._last.get(topic)
        self._last[topic] = (epoch, seq)
        if previous is None:
            return
        last_epoch, last_seq = previous
        if epoch != last_epoch:
            self.restarts += 1
        elif seq > last_seq + 1:
            gap = Gap(topic, last_seq + 1, seq)
            self.gaps += 1
            self.missed += gap.missed
            if self.on_gap is not None:
                self.on_gap(gap)


class _SubscriberBase:
    _context_class: type[zmq.Context] = zmq.Context

    def __init__(
        self,
        endpoint: str,
        patterns: Iterable[str],
        *,
        rcvhwm: int = sockets.DEFAULT_HWM,
        on_gap: Callable[[Gap], None] | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        context = context or self._context_class.instance()
        self.patterns = [Pattern.parse(p) for p in patterns]
        self.tracker = GapTracker(on_gap)
        self.received = 0
        self.malformed = 0
        self._client_filter = [p for p in self.patterns if p.needs_client_filter]
        self._all_by_prefix = len(self._client_filter) < len(self.patterns)
        self._socket = sockets.subscriber(endpoint, sorted({p.prefix for p in self.patterns}),
                                          rcvhwm, context)

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

    def _accept(self, topic: bytes, payload: bytes) -> events.AnyEvent | None:
        if not self._wanted(topic):
            return None
        try:
            event = events.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.malformed += 1
            return None
        self.received += 1
        self.tracker.check(topic, event.epoch, event.seq)
        return event

    def close(self) -> None:
        self._socket.close(linger=0)


class Subscriber(_SubscriberBase):
    """Blocking subscriber; iterate it, or call recv() with a timeout."""

    def recv(self, timeout: float | None = None) -> events.AnyEvent | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call, however many unwanted messages arrive meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if not self._socket.poll(int(left * 1000)):
                    return None
            topic, payload = self._recv_message()
            if payload is not None:
                event = self._accept(topic, payload)
                if event is not None:
                    return event

    def _recv_message(self) -> tuple[bytes, bytes | None]:
        topic = self._socket.recv()
        if not self._socket.getsockopt(zmq.RCVMORE):
            self.malformed += 1
            return topic, None
        return topic, self._socket.recv()

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

    async def recv(self, timeout: float | None = None) -> events.AnyEvent | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call)."""
        if timeout is None:
            return await self._next()
        try:
            return await asyncio.wait_for(self._next(), timeout)
        except TimeoutError:
            return None

    async def _next(self) -> events.AnyEvent:
        while True:
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
