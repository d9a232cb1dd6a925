"""The forwarder: libzmq's own proxy between an XSUB (publishers connect) and an XPUB
(subscribers connect). The supervisor's first child: `python -m tickmesh.bus.forwarder`.

The XPUB's send high-water mark is per subscriber: a slow subscriber loses its own messages
at that mark and nobody else is affected. The XSUB subscribes to everything, so that every
publisher learns at connect time that the forwarder is there (see bus.publisher), and takes no
message larger than the bus's max_message_bytes (bus.sockets). Once both sides are bound the
forwarder says it is ready; a thread publishes its heartbeat through its own front door.
With CURVE on (bus.sockets), both sides are CURVE servers and an authenticator thread admits
only the authorized public keys, on both sides alike.
"""

from __future__ import annotations

import os
import threading
import time

import zmq

from tickmesh.bus.publisher import Publisher
from tickmesh.bus import sockets
from tickmesh.bus.sockets import BusConfig, forwarder
from tickmesh.runtime.lifeline import exit_with_parent
from tickmesh.runtime.logs import configure_logging, log
from tickmesh.runtime.metrics import Metrics
from tickmesh.runtime.process import HEARTBEAT_SECONDS, publish_heartbeat
from tickmesh.runtime.readiness import announce_ready
from tickmesh.runtime.spec import child_spec

SUBSCRIBE_ALL = b"\x01"
Settings = None
"""The forwarder takes no settings: the [bus] table is its configuration."""


def serve(config: BusConfig, name: str = "forwarder") -> None:
    """Bind both sides, say ready, heartbeat, and proxy until the process is signalled."""
    sockets.use(config)
    sockets.authenticator(config, zmq.Context.instance())  # runs as long as the process
    frontend, backend = forwarder(config)
    frontend.send(SUBSCRIBE_ALL)
    announce_ready()
    threading.Thread(target=_heartbeats, args=(config, name), daemon=True,
                     name="heartbeat").start()
    zmq.proxy(frontend, backend)


def _heartbeats(config: BusConfig, name: str) -> None:
    publisher = Publisher(config.publish)
    metrics = Metrics()
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        publish_heartbeat(publisher, name, metrics)
        publisher.drain_subscriptions()


def main() -> None:
    spec = child_spec()
    configure_logging(spec.name)
    exit_with_parent()
    log().info("forwarder starting", publish=spec.bus.publish, subscribe=spec.bus.subscribe,
               hwm=spec.bus.hwm, max_message_bytes=spec.bus.max_message_bytes,
               curve=spec.bus.curve)
    try:
        serve(spec.bus, spec.name)
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
