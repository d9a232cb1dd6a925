"""Control requests to a handler over the bus: `bus.events.Control` on the topic
`control.<provider>.<SYMBOL>`, e.g. the order-book builder asking for a resync of one symbol.
Every handler listens for the whole life of its process and hands each request on; each is
counted in control_requests{action}."""

from __future__ import annotations

from typing import Callable

from tickmesh.bus.events import Control
from tickmesh.bus.subscriber import AsyncSubscriber
from tickmesh.runtime.process import ProcessContext


async def listen_for_control(ctx: ProcessContext, provider: str,
                             handle: Callable[[Control], None]) -> None:
    """Call `handle(request)` for each control request to `provider`, until cancelled."""
    subscriber = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, [f"control.{provider}"])
    try:
        while True:
            request = await subscriber.recv()
            if isinstance(request, Control):
                ctx.counts["control_requests", request.action] += 1
                handle(request)
    finally:
        subscriber.close()
