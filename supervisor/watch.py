"""The supervisor's view of the bus: every heartbeat and status event, and the topic of every
book snapshot (a resync's end), fed to supervisor.health with the time each came.

One subscriber with a small queue (HWM): if the supervisor falls behind, it loses messages
rather than anyone waiting for it, and health catches up at the next heartbeats. Book
snapshots are received raw and never decoded, so large books cost next to nothing.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog

from tickmesh.bus import events
from tickmesh.bus.subscriber import AsyncSubscriber, RawMessage
from tickmesh.bus.topics import split
from tickmesh.supervisor.health import Health

PATTERNS = ("heartbeat", "status", "book_snapshot")
HWM = 10_000


async def watch(endpoint: str, health: Health) -> None:
    """Feed `health` from the bus at `endpoint` until cancelled."""
    subscriber = AsyncSubscriber(endpoint, PATTERNS, rcvhwm=HWM, raw=True)
    try:
        async for message in subscriber:
            try:
                observe(health, message, time.time())
            except Exception:  # a bug here must not end the supervisor's view of the bus
                structlog.get_logger().exception("health could not take a message",
                                                 topic=message.topic[:80])
            await asyncio.sleep(0)  # a burst of messages does not hold the loop
    finally:
        subscriber.close()


def observe(health: Health, message: RawMessage, now: float) -> None:
    try:
        kind, provider, symbol = split(message.topic)
        event = None if kind == "book_snapshot" else events.decode(message.payload)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        return  # not a well-formed message: nothing to learn from it
    if isinstance(event, events.Heartbeat):
        health.heartbeat(event, now)
    elif isinstance(event, events.Status):
        health.status(event, now)
    elif kind == "book_snapshot":
        health.snapshot(provider, symbol, message.epoch)
