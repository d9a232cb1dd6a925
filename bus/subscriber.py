"""Subscriber SDK: receive events by topic pattern, and learn, in order, of everything you did not
get: messages lost, duplicates and stale publishers dropped, publishers gone silent or stopped.

    sub = Subscriber(patterns=["trade.alpaca.AAPL", "quote.*.*"])
    for event in sub:
        print(event.symbol, event.price)

Where: `Subscriber(endpoint, patterns)` connects to `endpoint`; with no endpoint (None), to the
bus of the system running in the run dir (TICKMESH_RUN_DIR, else /tmp/tickmesh-UID), whose
keys, with CURVE on, are put to use; bus.endpoints.NoSystem, naming the run dir, if none runs
there. Two endpoints (a tuple: `BusConfig.subscribe_endpoints` with two bus lines): both lines
are read, and the first copy of each message is kept (bus.lines: the second is dropped and
counted in `arbiter.duplicates`, the line that was first in `arbiter.first`; a message lost on
one line is no gap if the other brought it). No patterns: every event. Having heard nothing at its endpoint (no heartbeat, no
message) NO_SYSTEM_AFTER s (5) after connecting, a subscriber logs once, on the "tickmesh.bus"
logger, that no system seems to be there (bus.intake; not with heartbeat_timeout=0).

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

Here is the blocking Subscriber; AsyncSubscriber is in bus.async_subscriber, what both share
in bus.stream (the socket, and the stream out in order), bus.intake (each message in),
bus.messages (decoding, topic checks, raw mode) and bus.filling (gap fill in the stream).
"""

from __future__ import annotations

import time
from typing import Iterator

import zmq

from tickmesh.bus import events
from tickmesh.bus.async_subscriber import AsyncSubscriber
from tickmesh.bus.intake import HELD, FillRequest
from tickmesh.bus.messages import Item, RawMessage
from tickmesh.bus.sequence import MAX_GAP, Gap, Notice, PublisherSilent, PublisherStopped
from tickmesh.bus.stream import Stream

__all__ = ["AsyncSubscriber", "Gap", "MAX_GAP", "Notice", "PublisherSilent", "PublisherStopped",
           "RawMessage", "Subscriber"]


RECV_AHEAD = 64  # messages `recv` reads at once on two bus lines (then hands out in turn)
_NOT_MESSAGES = (Notice, FillRequest)


class Subscriber(Stream):
    """Blocking subscriber; iterate it, or call recv() with a timeout."""

    def recv(self, timeout: float | None = None) -> Item | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call, however many unwanted messages arrive meanwhile)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if len(self._sockets) > 1:
            return self._recv_lines(deadline)
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
                self._intake.malformed += 1
                continue
            message = accept(frame.bytes, recv())
            if message is not None and message is not HELD:
                return message

    def _recv_lines(self, deadline: float | None) -> Item | None:
        """`recv` on two bus lines: what has arrived is read in a batch (RECV_AHEAD at most),
        handed out one at a time from the front of the pending stream, in order."""
        pending = self._pending
        while True:
            if pending and not isinstance(pending[0], _NOT_MESSAGES):
                return pending.popleft()
            batch = self.recv_ready(RECV_AHEAD)
            if batch:
                self._pending.extendleft(reversed(batch[1:]))
                return batch[0]
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._poller.poll(self._wait_ms(deadline))

    def recv_ready(self, limit: int) -> list[Item]:
        """Up to `limit` wanted messages that have already arrived, without waiting: a batch
        for readers that keep up with the whole bus (e.g. the recorder)."""
        while True:
            batch = self._collect(self._recvs, limit)
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
