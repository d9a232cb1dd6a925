"""The forwarder: libzmq's own proxy between an XSUB (publishers connect) and an XPUB
(subscribers connect). Its process, the supervisor's first child, is runtime.forwarder
(`python -m tickmesh.runtime.forwarder`): its log, its lifeline, readiness and heartbeat.

The XPUB's send high-water mark is per subscriber: a slow subscriber loses its own messages
at that mark and nobody else is affected. The XSUB subscribes to everything, so that every
publisher learns at connect time that the forwarder is there (see bus.publisher), and takes no
message larger than the bus's max_message_bytes (bus.sockets). With CURVE on (bus.sockets),
both sides are CURVE servers and an authenticator thread admits only the authorized public
keys, on both sides alike.

It counts what it forwards: libzmq's steerable proxy keeps statistics, asked for over its
control socket (`Counts`, read by the process's heartbeat thread), so the proxy stays libzmq's
own loop and counting costs no Python work per message. libzmq counts frames, and every bus
message is two (topic, payload: bus.publisher), so the counts are frames // 2. Subscriptions
(the other way, subscribers to publishers) are not counted.
"""

from __future__ import annotations

import itertools
from typing import Callable

import zmq

from tickmesh.bus import sockets
from tickmesh.bus.sockets import BusConfig, Line

SUBSCRIBE_ALL = b"\x01"
FRAMES_PER_MESSAGE = 2  # topic, payload
_controls = itertools.count()


class Counts:
    """The running proxy's counts, for one other thread to read (`read`)."""

    def __init__(self, context: zmq.Context) -> None:
        endpoint = f"inproc://tickmesh-forwarder-control-{next(_controls)}"
        self.control = context.socket(zmq.REP)  # the proxy's end
        self.control.linger = 0
        self.control.bind(endpoint)
        self._ask = context.socket(zmq.REQ)  # the reader's
        self._ask.linger = 0
        self._ask.connect(endpoint)

    def read(self) -> dict[str, int]:
        """{"in": messages taken from publishers, "out": messages handed to the subscribers'
        XPUB} since the proxy started (it must be running, or this waits until it is)."""
        self._ask.send(b"STATISTICS")
        stats = [int.from_bytes(frame, "little") for frame in self._ask.recv_multipart()]
        # frontend: frames in, bytes in, frames out, bytes out; then the backend's the same
        return {"in": stats[0] // FRAMES_PER_MESSAGE, "out": stats[6] // FRAMES_PER_MESSAGE}


def serve(config: BusConfig, line: Line,
          on_bound: Callable[[Counts], object] = lambda counts: None) -> None:
    """Bind both sides of `line`, call `on_bound` with the proxy's Counts (the process says it
    is ready and starts its heartbeat, say), and proxy until the process is signalled."""
    sockets.use(config)
    context = zmq.Context.instance()
    sockets.authenticator(config, context)  # runs as long as the process
    frontend, backend = sockets.forwarder(config, line)
    frontend.send(SUBSCRIBE_ALL)
    counts = Counts(context)
    on_bound(counts)
    zmq.proxy_steerable(frontend, backend, None, counts.control)
