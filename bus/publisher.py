"""Publisher: puts events on the bus without ever blocking the caller.

Connects an XPUB socket to the forwarder's publish endpoint (with two bus lines, to both
forwarders': every message goes on both lines, each through a queue of its own, bus.sockets). The forwarder subscribes to
everything as soon as a publisher connects; the publisher waits (boundedly) for that
subscription before its first send, so a new process does not lose its first events to the
"slow joiner" race. After that, sends never block: libzmq drops past the send high-water mark,
and subscribers see the drop as a gap in the per-topic sequence numbers. The epoch is fixed for
this publisher's life, so subscribers tell a restart from a gap.

One duty comes with it: the XPUB socket also receives the forwarder's subscription again each
time the forwarder restarts. Call `drain_subscriptions()` now and then (the child runtime does
it every second) so that those messages do not pile up; `publish` stays free of that work.
"""

from __future__ import annotations

import time
from typing import Iterable

import zmq
import zmq.backend

from tickmesh.bus import events, sockets
from tickmesh.bus.topics import TopicError, topic

DEFAULT_LINGER_MS = 200  # at close, pending sends get this long to leave, then are dropped
DEFAULT_READY_TIMEOUT = 2.0  # seconds to wait for the forwarder at start
_SNDMORE = zmq.SNDMORE
_encode_into = events.encode_into


class Publisher:
    def __init__(
        self,
        endpoint: str | tuple[str, ...],
        *,
        context: zmq.Context | None = None,
        sndhwm: int = sockets.DEFAULT_HWM,
        epoch: int | None = None,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
    ) -> None:
        self.endpoints = (endpoint,) if isinstance(endpoint, str) else tuple(endpoint)
        self.epoch = epoch if epoch is not None else time.time_ns()
        self._socket = sockets.publisher(self.endpoints, sndhwm, DEFAULT_LINGER_MS, context)
        # The Cython send, without pyzmq's Python wrapper: a measured ~15% of the hot path.
        self._send = zmq.backend.Socket.send.__get__(self._socket)
        self._buffer = bytearray()  # every event is encoded into it; the send copies it out
        # (event type, provider, symbol) -> [topic bytes, last sequence number, deltas' stream]
        self._streams: dict[tuple[type, str, str], list] = {}
        self.forwarder_ready = False
        self.wait_for_forwarder(ready_timeout)

    def wait_for_forwarder(self, timeout: float) -> bool:
        """True once a forwarder's subscription has arrived (with two lines, either's: the
        other's copies start when it subscribes), False if none has within `timeout` s (0: just
        look); events published before it arrives are dropped, as for any absent forwarder."""
        if not self.forwarder_ready and self._socket.poll(int(timeout * 1000)):
            self.drain_subscriptions()
            self.forwarder_ready = True
        return self.forwarder_ready

    def drain_subscriptions(self) -> None:
        """Drop the subscription messages the XPUB socket queued (see the module's docstring)."""
        while self._socket.poll(0):
            self._socket.recv()

    def publish(self, event: events.Event) -> None:
        """Stamp the event with its topic's next sequence number and the epoch, and send it;
        TopicError if its provider or symbol cannot make a topic."""
        for _event, problem in self.publish_many((event,)):
            raise problem

    def publish_many(self, batch: Iterable[events.Event]) -> list[tuple[events.Event, TopicError]]:
        """Publish each event of `batch` in turn, as `publish` does; those whose provider or
        symbol cannot make a topic are skipped, and returned with the reason. The hot path: a
        handler publishes a frame's events with one call (the loop's lookups made once)."""
        streams, buffer, send, epoch = self._streams, self._buffer, self._send, self.epoch
        refused = []
        for event in batch:
            key = (type(event), event.provider, event.symbol)
            stream = streams.get(key)
            if stream is None:
                try:
                    stream = self._open(key, event)
                except TopicError as problem:
                    refused.append((event, problem))
                    continue
            if stream[2] is not None:  # a snapshot: where its symbol's deltas stand
                event.delta_seq = stream[2][1]
            stream[1] = event.seq = stream[1] + 1
            event.epoch = epoch
            _encode_into(event, buffer)
            send(stream[0], _SNDMORE)
            send(buffer)
        return refused

    def _open(self, key: tuple[type, str, str], event: events.Event) -> list:
        """A new topic's stream: [topic bytes, last sequence number, the stream of its deltas
        (for a book snapshot, which says where they stand: BookSnapshot.delta_seq) or None]."""
        name = topic(event.__struct_config__.tag, *key[1:])
        deltas = None
        if key[0] is events.BookSnapshot:
            delta_key = (events.BookDelta, *key[1:])
            deltas = self._streams.get(delta_key)
            if deltas is None:
                deltas = self._streams[delta_key] = [topic("book_delta", *key[1:]), 0, None]
        stream = self._streams[key] = [name, 0, deltas]
        return stream

    def publish_raw(self, topic: bytes, payload: bytes) -> None:
        """Send two frames exactly as given, stamping nothing: for replaying recorded events with
        their original sequence numbers and epochs. Not counted in `stream_counts`."""
        self._send(topic, _SNDMORE)
        self._send(payload)

    def stream_counts(self) -> dict[tuple[str, str], int]:
        """Events published so far, by (kind, provider): the sum of the topics' sequences."""
        counts: dict[tuple[str, str], int] = {}
        for (kind, provider, _symbol), (_topic, seq, _deltas) in self._streams.items():
            key = (kind.__struct_config__.tag, provider)
            counts[key] = counts.get(key, 0) + seq
        return counts

    def close(self, linger_ms: int | None = None) -> None:
        """Close; pending sends get DEFAULT_LINGER_MS (or `linger_ms`) to leave."""
        self._socket.close(linger=linger_ms)
