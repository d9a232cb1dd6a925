"""The tickmesh bus: normalized events on ZeroMQ, published through one forwarder.

    events      the event schema (pure: msgspec only)
    topics      `kind.provider.SYMBOL|` topics and subscription patterns (pure)
    sockets     the one factory of ZeroMQ sockets, and the `[bus]` config
    publisher   Publisher: non-blocking, per-topic sequence numbers
    sequence    what a subscriber checks of each message, and the notices it tells (pure)
    subscriber  Subscriber (and AsyncSubscriber, async_subscriber): patterns, and the stream
                told in order; its pieces: stream (the socket, and the stream out in order),
                intake (each message in), messages (decoding, topic checks, raw mode),
                filling (gap fill in the stream)
    forwarder   the XSUB/XPUB proxy every process publishes to and subscribes from
    endpoints   where the running system is: its run dir's system.json

Handlers and consumers use this package; it knows nothing of them, and imports nothing of
tickmesh outside it. The names below are importable from `tickmesh.bus` directly
(`from tickmesh.bus import Subscriber, Trade`), loaded on first use, so that importing
`tickmesh.bus.events` alone never loads ZeroMQ.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Alert": "tickmesh.bus.events", "AnyEvent": "tickmesh.bus.events", "Bar": "tickmesh.bus.events", "Bbo": "tickmesh.bus.events", "BookDelta": "tickmesh.bus.events",
    "BookSnapshot": "tickmesh.bus.events", "BookStatus": "tickmesh.bus.events", "Control": "tickmesh.bus.events",
    "Depth": "tickmesh.bus.events", "Event": "tickmesh.bus.events", "Heartbeat": "tickmesh.bus.events",
    "Quote": "tickmesh.bus.events", "Status": "tickmesh.bus.events", "Trade": "tickmesh.bus.events",
    "Publisher": "tickmesh.bus.publisher",
    "AsyncSubscriber": "tickmesh.bus.subscriber", "Gap": "tickmesh.bus.subscriber", "Subscriber": "tickmesh.bus.subscriber",
    "PublisherSilent": "tickmesh.bus.sequence", "PublisherStopped": "tickmesh.bus.sequence",
    "Pattern": "tickmesh.bus.topics", "topic": "tickmesh.bus.topics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tickmesh.bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
