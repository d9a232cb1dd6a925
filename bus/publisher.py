"""Publisher: puts events on the bus without ever blocking the caller.

Connects a PUB socket to the forwarder's publish endpoint. Each topic has its own sequence
number; the epoch is fixed for this publisher's life, so subscribers tell a restart from a gap.
libzmq drops (silently) past the send high-water mark; that is the point: a handler is never
slowed by the bus.
"""

from __future__ import annotations

import time

import zmq

from bus import events
from bus.topics import topic

DEFAULT_SNDHWM = 100_000
DEFAULT_LINGER_MS = 200  # at close, pending sends get this long to leave, then are dropped


class Publisher:
    def __init__(
        self,
        endpoint: str,
        *,
        context: zmq.Context | None = None,
        sndhwm: int = DEFAULT_SNDHWM,
        epoch: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.epoch = epoch if epoch is not None else time.time_ns()
        self.published = 0
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, sndhwm)
        self._socket.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        self._socket.connect(endpoint)
        self._send = self._socket.send
        # (kind, provider, symbol) -> [topic bytes, last sequence number]
        self._streams: dict[tuple[str, str, str], list] = {}

    def publish(self, event: events.Event) -> None:
        """Stamp the event with its topic's next sequence number and the epoch, and send it."""
        key = (event.__struct_config__.tag, event.provider, event.symbol)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = [topic(*key), 0]
        stream[1] += 1
        event.seq = stream[1]
        event.epoch = self.epoch
        self._send(stream[0], zmq.SNDMORE)
        self._send(events.encode(event))
        self.published += 1

    def close(self) -> None:
        self._socket.close()
