"""Subscriber SDK: receive events by topic pattern, and learn, in order, of everything you did not
get: messages lost, duplicates and stale publishers dropped, publishers gone silent or stopped.

    sub = Subscriber("ipc:///tmp/tickmesh-0/subscribe", ["trade.alpaca.AAPL", "quote.*.*"])
    for event in sub:
        print(event.symbol, event.price)

What a reader is told, and where (bus.sequence has the rules): messages are delivered in the
order they came, and each notice is told at its place among them, through a callback:
- `on_gap(Gap)`: messages of a topic were lost; told after every message before the loss was
  handed out, and before the message that revealed it;
- `on_publisher(PublisherSilent | PublisherStopped)`: a publisher whose messages you received
  sent no heartbeat for `heartbeat_timeout` s (default 3, looked at while the reader is caught
  up; 0: not watched), or said it stopped; told after everything it sent.
A batch (`recv_batch`, `batches`, `recv_ready`) ends before a notice, and the notice is told
at the start of the next call: a reader that handles each batch before asking for the next has
handled everything before a notice when it hears of it. (An async batch may be empty: a notice
was told, a publisher gone silent say, and nothing has come after it yet.)
Duplicates (the same publisher epoch, a sequence number at or below the last) and stale
epochs (older than the newest seen on the topic) are dropped and counted
(`tracker.duplicates`, `tracker.stale_epoch`), never delivered; `accept_stale=True` delivers
older epochs (a replay bus). At most `max_topics` topics are tracked: messages of further
topics are dropped and counted (`tracker.topics_refused`, logged once), or with
`evict_topics=True` (a reader that must keep every message) the topic first tracked is
forgotten to make room (`tracker.topics_evicted`); the topics of a silent or stopped publisher
are forgotten.

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
answered), at its place among the filled messages. `gaps` and `missed` count every gap seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Iterable, Iterator, NamedTuple

import msgspec
import zmq
import zmq.asyncio
import zmq.backend

from tickmesh.bus import events, sockets
from tickmesh.bus.gapfill import Fill, GapFiller, GapFillUnavailable, default_endpoint
from tickmesh.bus.sequence import (DEFAULT_HEARTBEAT_TIMEOUT, DEFAULT_MAX_TOPICS, MAX_GAP, Gap, Notice,
                          PublisherSilent, PublisherStopped, PublisherWatch, SequenceTracker)
from tickmesh.bus.topics import Pattern

__all__ = ["AsyncSubscriber", "Gap", "MAX_GAP", "Notice", "PublisherSilent", "PublisherStopped",
           "RawMessage", "Subscriber"]

BATCH = 256  # messages an async reader takes at most at one wake-up (`batches`)
HEARTBEATS = b"heartbeat."
CHECK_EVERY = 0.25  # seconds between two looks for silent publishers, while caught up
_log = logging.getLogger("tickmesh.bus")


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


class _Beat(msgspec.Struct, gc=False):
    """Only the keys of a heartbeat that publisher watching needs."""

    p: str = ""
    e: int = 0
    fin: bool = False


_stamp = msgspec.msgpack.Decoder(_Stamp).decode
_beat = msgspec.msgpack.Decoder(_Beat).decode


@dataclass(frozen=True)
class _FillRequest:
    """In the pending stream: ask the recorder for `gap` before delivering what follows."""

    gap: Gap


_HELD = object()  # `_accept`'s answer when the message waits in `_pending` behind a notice
Item = events.AnyEvent | RawMessage


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
    ) -> None:
        context = context or self._context_class.instance()
        self.patterns = [Pattern.parse(p) for p in patterns]
        self.raw = raw
        self.on_gap = on_gap
        self.on_publisher = on_publisher
        self.tracker = SequenceTracker(accept_stale=accept_stale, max_topics=max_topics,
                                       evict=evict_topics, on_full=self._full)
        self.watch = PublisherWatch(heartbeat_timeout) if heartbeat_timeout > 0 else None
        self.received = 0
        self.malformed = 0
        self.filled = 0
        self._filler = GapFiller(gapfill_endpoint or default_endpoint(endpoint)) if fill_gaps \
            else None
        self._pending: deque = deque()  # in stream order: notices, fill requests, messages
        self._next_check = 0.0
        self._told = 0  # notices told so far
        self._client_filter = [p for p in self.patterns if p.needs_client_filter]
        self._all_by_prefix = len(self._client_filter) < len(self.patterns)
        prefixes = {p.prefix for p in self.patterns}
        if self.watch is not None:
            prefixes.add(HEARTBEATS)  # every publisher's heartbeat, wanted or not
        self._socket = sockets.subscriber(endpoint, sorted(prefixes), rcvhwm, context)
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

    # --- one message in ---------------------------------------------------------------------

    def _accept(self, topic: bytes, payload: bytes) -> Item | object | None:
        """The message to deliver; None: not wanted, malformed or dropped; _HELD: it waits in
        `_pending` behind a notice."""
        if topic[:10] == HEARTBEATS and self.watch is not None:
            return self._heartbeat(topic, payload)
        if self._client_filter and not self._wanted(topic):
            return None
        message = self._convert(topic, payload)
        if message is None:
            return None
        return self._track(topic, message)

    def _track(self, topic: bytes, message: Item) -> Item | object | None:
        """Rules 1-7 of bus.sequence for one decoded message."""
        if not (message.epoch or message.seq):
            self.received += 1  # unstamped: not tracked
            return message
        verdict = self.tracker.check(topic, message.epoch, message.seq)
        if verdict is True:
            self.received += 1
            return message
        if verdict is False:
            return None
        self.received += 1
        self._pending.append(_FillRequest(verdict) if self._filler is not None else verdict)
        self._pending.append(message)
        return _HELD

    def _full(self) -> None:
        what = "the topic tracked longest ago is forgotten for each new one " \
            "(tracker.topics_evicted)" if self.tracker.evict else \
            "messages of further topics are dropped (tracker.topics_refused)"
        _log.warning("subscriber tracks %d topics, its max_topics: %s", self.tracker.max_topics,
                     what)

    def _heartbeat(self, topic: bytes, payload: bytes) -> Item | object | None:
        """A heartbeat: note its publisher alive (rules 8-9); deliver it if it was asked for."""
        try:
            beat = _beat(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            beat = None
        out = None
        if self._wanted_beat(topic):
            message = self._convert(topic, payload)
            out = self._track(topic, message) if message is not None else None
        if beat is None or not beat.e:
            return out
        if not beat.fin:
            self.watch.heard(beat.e, beat.p, time.monotonic())
            return out
        stopped = self.watch.stopped(beat.e, beat.p)
        if not self.tracker.tracks(beat.e):
            return out
        self.tracker.forget(beat.e)
        if out is not None and out is not _HELD:
            self._pending.append(out)
        self._pending.append(stopped)
        return _HELD

    def _wanted_beat(self, topic: bytes) -> bool:
        try:
            return any(p.matches(topic) for p in self.patterns)
        except (ValueError, UnicodeDecodeError):
            return False

    def _wanted(self, topic: bytes) -> bool:
        """Finish filtering what a prefix subscription could not express."""
        try:
            if any(p.matches(topic) for p in self._client_filter):
                return True
            return self._all_by_prefix and any(
                not p.needs_client_filter and topic.startswith(p.prefix) for p in self.patterns
            )
        except (ValueError, UnicodeDecodeError):
            return False

    def _convert(self, topic: bytes, payload: bytes) -> Item | None:
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

    # --- the stream out ---------------------------------------------------------------------

    def _collect(self, recv: Callable, limit: int) -> list[Item]:
        """Up to `limit` messages, without waiting: what is pending, then what has arrived at
        the socket (read with `recv`). Stops before a notice that follows messages, and before
        a fill request (both are for the next call); tells the notices it meets first."""
        batch: list[Item] = []
        while len(batch) < limit:
            if self._pending:
                if not self._take(batch, limit):
                    break
            elif not self._drain(recv, batch, limit):
                break
        return batch

    def _take(self, batch: list[Item], limit: int) -> bool:
        """Move pending messages into `batch`; True if the pending stream is now empty."""
        pending = self._pending
        while pending and len(batch) < limit:
            item = pending[0]
            if isinstance(item, _FillRequest):
                return False
            if isinstance(item, Notice):
                if batch:
                    return False  # told at the next call, after this batch is handled
                pending.popleft()
                self._tell(item)
            else:
                batch.append(pending.popleft())
        return not pending

    def _drain(self, recv: Callable, batch: list[Item], limit: int) -> bool:
        """Read arrived messages into `batch`; True if something now waits in `_pending`."""
        accept, noblock = self._accept, zmq.NOBLOCK
        try:
            while len(batch) < limit:
                frame = recv(noblock, False)
                if not frame.more:
                    self.malformed += 1
                    continue
                message = accept(frame.bytes, recv())
                if message is _HELD:
                    return True
                if message is not None:
                    batch.append(message)
            return False
        except zmq.Again:
            self._caught_up()
            return bool(self._pending)

    def _caught_up(self) -> None:
        """Nothing more is waiting: look for publishers gone silent (rule 9), now and then."""
        if self.watch is None or not len(self.watch):
            return
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        for notice in self.watch.silent(now):
            if self.tracker.tracks(notice.epoch):
                self.tracker.forget(notice.epoch)
                self._pending.append(notice)

    def _tell(self, notice: Notice) -> None:
        self._told += 1
        if isinstance(notice, Gap):
            if self.on_gap is not None:
                self.on_gap(notice)
        elif self.on_publisher is not None:
            self.on_publisher(notice)

    def _wait_ms(self, deadline: float | None) -> int | None:
        """How long to wait for the socket: to the deadline, or the next look for silent
        publishers, whichever is first (None: for ever)."""
        now = time.monotonic()
        waits = [] if deadline is None else [deadline - now]
        if self.watch is not None and len(self.watch):
            waits.append(max(self._next_check, now + 0.01) - now)
        return None if not waits else max(0, int(min(waits) * 1000) + 1)

    # --- gap fill ---------------------------------------------------------------------------

    def _fetch(self, gap: Gap) -> Fill | None:
        try:
            return self._filler.fetch(gap.topic, gap.epoch, gap.expected, gap.received - 1)
        except GapFillUnavailable:
            return None

    def _apply_fill(self, gap: Gap, fill: Fill | None) -> None:
        """Put the recorded messages of `gap`, and the gaps of what the recorder did not have,
        in sequence order at the front of `_pending`."""
        filled = []
        for payload in fill.payloads if fill else ():
            message = self._convert(gap.topic, payload)
            if message is not None and message.epoch == gap.epoch:
                filled.append(message)
        self.filled += len(filled)
        missing = fill.missing if fill else [(gap.expected, gap.received - 1)]
        items = sorted([(first, 0, Gap(gap.topic, first, last + 1, gap.epoch))
                        for first, last in missing] + [(m.seq, 1, m) for m in filled],
                       key=lambda item: item[:2])
        self._pending.extendleft(item for _seq, _order, item in reversed(items))

    def close(self) -> None:
        self._socket.close(linger=0)
        if self._filler is not None:
            self._filler.close()


class Subscriber(_SubscriberBase):
    """Blocking subscriber; iterate it, or call recv() with a timeout."""

    def recv(self, timeout: float | None = None) -> Item | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call, however many unwanted messages arrive meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        recv, accept, noblock = self._recv, self._accept, zmq.NOBLOCK
        while True:
            if self._pending:
                batch = self.recv_ready(1)
                if batch:
                    return batch[0]
                continue
            try:  # the hot path: one message, nothing pending
                frame = recv(noblock, False)
            except zmq.Again:
                self._caught_up()
                if not self._pending:
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                    self._socket.poll(self._wait_ms(deadline))
                continue
            if not frame.more:
                self.malformed += 1
                continue
            message = accept(frame.bytes, recv())
            if message is not None and message is not _HELD:
                return message

    def recv_ready(self, limit: int) -> list[Item]:
        """Up to `limit` wanted messages that have already arrived, without waiting: a batch
        for readers that keep up with the whole bus (e.g. the recorder)."""
        while True:
            batch = self._collect(self._recv, limit)
            if batch or not self._pending:
                return batch
            request = self._pending.popleft()  # a fill request: nothing is before it
            self._apply_fill(request.gap, self._fetch(request.gap))

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
    """The same, for asyncio: `event = await sub.recv()`, `async for event in sub`, or
    `async for batch in sub.batches()`. Messages are read from a blocking shadow of the socket
    once the asyncio socket says they are there: one wake-up for a burst."""

    _context_class = zmq.asyncio.Context

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # a blocking view of the same libzmq socket (closed with it: never close it apart)
        self._shadow = zmq.Socket.shadow(self._socket.underlying)
        self._shadow_recv = zmq.backend.Socket.recv.__get__(self._shadow)
        self._filling: asyncio.Future | None = None

    async def recv(self, timeout: float | None = None) -> Item | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call). Cancelling it loses nothing and reorders nothing."""
        batch = await self._batch(1, None if timeout is None else time.monotonic() + timeout)
        return batch[0] if batch else None

    async def recv_batch(self, limit: int) -> list[Item]:
        """The next wanted events, at most `limit`: those already arrived, up to the next
        notice; waits for one, unless a notice was told meanwhile (then the batch may be empty:
        a reader handles what it was told, e.g. a publisher gone silent, at once)."""
        return await self._batch(limit, None, until_told=True)

    async def batches(self, limit: int = BATCH) -> AsyncIterator[list[Item]]:
        """`recv_batch(limit)` for ever; after each batch is handled, the loop's other tasks
        run (a ready socket never suspends `recv_batch`: a busy bus would starve them)."""
        while True:
            yield await self.recv_batch(limit)
            await asyncio.sleep(0)

    async def _batch(self, limit: int, deadline: float | None,
                     until_told: bool = False) -> list[Item]:
        told = self._told
        while True:
            batch = self._collect(self._shadow_recv, limit)
            if batch or (until_told and self._told != told):
                return batch
            if self._pending:
                if not await self._fill_head(deadline):
                    return []
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return []
            await self._socket.poll(self._wait_ms(deadline), zmq.POLLIN)

    async def _fill_head(self, deadline: float | None) -> bool:
        """Carry out the fill request at the head of `_pending` (in a thread: it waits on the
        recorder); False if the deadline came first. Shielded: a caller that gives up or is
        cancelled leaves it running, and the next call waits for the same fill, so nothing
        behind it is delivered first."""
        request = self._pending[0]
        if self._filling is None:
            self._filling = asyncio.ensure_future(asyncio.to_thread(self._fetch, request.gap))
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            fill = await asyncio.wait_for(asyncio.shield(self._filling), wait)
        except TimeoutError:
            return False
        self._filling = None
        self._pending.popleft()
        self._apply_fill(request.gap, fill)
        return True

    def __aiter__(self) -> "AsyncSubscriber":
        return self

    async def __anext__(self) -> Item:
        return (await self._batch(1, None))[0]
