"""The supervisor's view of the bus: every heartbeat and status event, and the topic of every
book snapshot (a resync's end), fed to supervisor.health with the time each came.

One subscriber with a small queue (HWM): if the supervisor falls behind, it loses messages
rather than anyone waiting for it, and health catches up at the next heartbeats. Book
snapshots are received raw and never decoded, so large books cost next to nothing. It reads
every line of the bus (bus.subscriber arbitrates them).

Beside it, `watch_line` follows one line alone, for supervisor.reach: the heartbeats that line
brings, raw (their topic and epoch only), and among them the supervisor's own (its topic, and
its heartbeat publisher's epoch).
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
from tickmesh.supervisor.reach import Reach

PATTERNS = ("heartbeat", "status", "book_snapshot")
HWM = 10_000
LINE_HWM = 1_000  # a line's heartbeats only


async def watch(endpoints: tuple[str, ...], health: Health) -> None:
    """Feed `health` from the bus at `endpoints` (each line's) until cancelled."""
    subscriber = AsyncSubscriber(endpoints, PATTERNS, rcvhwm=HWM, raw=True)
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


async def watch_line(line: str, endpoint: str, reach: Reach, own: tuple[bytes, int]) -> None:
    """Tell `reach` of every heartbeat that comes on `line` (at `endpoint`) until cancelled;
    `own`: the topic and publisher epoch of the supervisor's own heartbeats."""
    subscriber = AsyncSubscriber(endpoint, ("heartbeat",), rcvhwm=LINE_HWM, raw=True,
                                 heartbeat_timeout=0)
    try:
        async for message in subscriber:
            reach.heard(line, (message.topic, message.epoch) == own, time.time())
    finally:
        subscriber.close()
