"""The tickmesh bus: normalized events on ZeroMQ, published through one forwarder.

    events      the event schema (pure: msgspec only)
    topics      `kind.provider.SYMBOL|` topics and subscription patterns (pure)
    sockets     the one factory of ZeroMQ sockets, and the `[bus]` config
    publisher   Publisher: non-blocking, per-topic sequence numbers
    sequence    what a subscriber checks of each message, and the notices it tells (pure)
    subscriber  Subscriber / AsyncSubscriber: patterns, and the stream told in order
    forwarder   the XSUB/XPUB proxy every process publishes to and subscribes from

Handlers and consumers use this package; it knows nothing of them. The names below are
importable from `bus` directly (`from bus import Subscriber, Trade`), loaded on first use, so
that importing `bus.events` alone never loads ZeroMQ.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Alert": "bus.events", "AnyEvent": "bus.events", "Bar": "bus.events", "Bbo": "bus.events", "BookDelta": "bus.events",
    "BookSnapshot": "bus.events", "BookStatus": "bus.events", "Control": "bus.events",
    "Depth": "bus.events", "Event": "bus.events", "Heartbeat": "bus.events",
    "Quote": "bus.events", "Status": "bus.events", "Trade": "bus.events",
    "Publisher": "bus.publisher",
    "AsyncSubscriber": "bus.subscriber", "Gap": "bus.subscriber", "Subscriber": "bus.subscriber",
    "PublisherSilent": "bus.sequence", "PublisherStopped": "bus.sequence",
    "Pattern": "bus.topics", "topic": "bus.topics",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
