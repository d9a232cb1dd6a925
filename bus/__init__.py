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

_NAMES = {
    "events": ("Alert", "AnyEvent", "Bar", "Bbo", "BookDelta", "BookSnapshot", "BookStatus",
               "Control", "Depth", "Event", "Heartbeat", "Quote", "Status", "Trade"),
    "publisher": ("Publisher",),
    "subscriber": ("AsyncSubscriber", "Gap", "Subscriber"),
    "sequence": ("PublisherSilent", "PublisherStopped"),
    "topics": ("Pattern", "topic"),
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _NAMES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tickmesh.bus' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
