"""The forwarder's process, the supervisor's first child: `python -m tickmesh.runtime.forwarder`.

bus.forwarder is the proxy itself; this makes it one of the system's processes: its log, its
lifeline to the supervisor, "ready" once both sides are bound, and a heartbeat every second,
published through its own front door, with the messages forwarded so far
(forwarder_messages_in, forwarder_messages_out: the forwarder's in/s and out/s in `tickmesh
status`).
"""

from __future__ import annotations

import os
import threading
import time

from tickmesh.bus import forwarder
from tickmesh.bus.publisher import Publisher
from tickmesh.bus.sockets import Line
from tickmesh.runtime.lifeline import exit_with_parent
from tickmesh.runtime.logs import configure_logging, log
from tickmesh.runtime.metrics import Metrics
from tickmesh.runtime.process import HEARTBEAT_SECONDS, publish_heartbeat
from tickmesh.runtime.readiness import announce_ready
from tickmesh.runtime.spec import child_spec

Settings = None
"""The forwarder takes no settings: the [bus] table is its configuration."""


def main() -> None:
    spec = child_spec()
    configure_logging(spec.name)
    exit_with_parent()
    line = spec.bus.served_line
    if line is None:
        raise SystemExit(f"{spec.name}: [bus] forwarder = {spec.bus.forwarder!r}: this host "
                         "runs no forwarder")
    log().info("forwarder starting", line=line.name, publish=line.publish,
               subscribe=line.subscribe, hwm=spec.bus.hwm,
               max_message_bytes=spec.bus.max_message_bytes, curve=spec.bus.curve)
    try:
        forwarder.serve(spec.bus, line, lambda counts: _bound(line, spec.name, counts))
    except KeyboardInterrupt:
        pass
    finally:
        os._exit(0)


def _bound(line: Line, name: str, counts: forwarder.Counts) -> None:
    announce_ready()
    threading.Thread(target=_heartbeats, args=(line, name, counts), daemon=True,
                     name="heartbeat").start()


def _heartbeats(line: Line, name: str, counts: forwarder.Counts) -> None:
    publisher = Publisher(line.publish)  # through its own front door: on its own line only
    metrics = Metrics()
    metrics.collect(lambda: _forwarded(counts))
    while True:
        time.sleep(HEARTBEAT_SECONDS)
        publish_heartbeat(publisher, name, metrics)
        publisher.drain_subscriptions()


def _forwarded(counts: forwarder.Counts) -> list[tuple[str, float]]:
    forwarded = counts.read()
    return [("forwarder_messages_in", forwarded["in"]),
            ("forwarder_messages_out", forwarded["out"])]


if __name__ == "__main__":
    main()
