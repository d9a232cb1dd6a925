"""The forwarder: libzmq's own proxy between an XSUB (publishers connect) and an XPUB
(subscribers connect). Its process, the supervisor's first child, is runtime.forwarder
(`python -m tickmesh.runtime.forwarder`): its log, its lifeline, readiness and heartbeat.

The XPUB's send high-water mark is per subscriber: a slow subscriber loses its own messages
at that mark and nobody else is affected. The XSUB subscribes to everything, so that every
publisher learns at connect time that the forwarder is there (see bus.publisher), and takes no
message larger than the bus's max_message_bytes (bus.sockets). With CURVE on (bus.sockets),
both sides are CURVE servers and an authenticator thread admits only the authorized public
keys, on both sides alike.
"""

from __future__ import annotations

from typing import Callable

import zmq

from tickmesh.bus import sockets
from tickmesh.bus.sockets import BusConfig

SUBSCRIBE_ALL = b"\x01"


def serve(config: BusConfig, on_bound: Callable[[], object] = lambda: None) -> None:
    """Bind both sides, call `on_bound` (the process says it is ready, say), and proxy until
    the process is signalled."""
    sockets.use(config)
    sockets.authenticator(config, zmq.Context.instance())  # runs as long as the process
    frontend, backend = sockets.forwarder(config)
    frontend.send(SUBSCRIBE_ALL)
    on_bound()
    zmq.proxy(frontend, backend)
