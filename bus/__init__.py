"""The tickmesh bus: normalized events on ZeroMQ, published through one forwarder.

Handlers and consumers use this package; it knows nothing of them.
"""

from bus.events import (
    AnyEvent, Bar, BookDelta, BookSnapshot, Event, Heartbeat, Quote, Status, Trade,
)
from bus.publisher import Publisher
from bus.subscriber import AsyncSubscriber, Gap, Subscriber
from bus.topics import Pattern, topic

__all__ = [
    "AnyEvent", "AsyncSubscriber", "Bar", "BookDelta", "BookSnapshot", "Event", "Gap",
    "Heartbeat", "Pattern", "Publisher", "Quote", "Status", "Subscriber", "Trade", "topic",
]
