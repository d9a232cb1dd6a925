"""A handler's connection life as the bus sees it, whatever owns the socket: a Status event on
every change of state, the backoff between attempts, and the counters.

    lifecycle = Lifecycle(ctx, "myprovider", settings.backoff(), log, settings.stable_after)
    await lifecycle.run(connection)       # until cancelled
    lifecycle.status("subscribed")        # from inside a connection, as the states change

`run` calls `connection()` (one connection's whole life; it returns why it ended) again and
again: Status "connecting" before each attempt, "disconnected" with the reason after it, then
a jittered, capped exponential wait (handlers.common.backoff). The backoff starts again from
its minimum only after a connection that lasted `stable_after` seconds from its first
"subscribed": a server that accepts, subscribes and drops at once gets ever longer waits.
Metrics: connects, reconnects, provider_errors (each "error" status, by code),
reconnect_delay_seconds. Messages are published and logged with every known secret masked,
then cut to MAX_MESSAGE characters (masked first, so that no cut can leave part of a secret).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, NoReturn

from tickmesh.bus.events import STATUS_STATES, Status
from tickmesh.handlers.common.backoff import Backoff
from tickmesh.runtime.process import ProcessContext
from tickmesh.runtime.secrets import redact

MAX_MESSAGE = 300
"""Characters of a Status message kept (after masking secrets)."""


class Lifecycle:
    def __init__(self, ctx: ProcessContext, provider: str, backoff: Backoff, log: Any,
                 stable_after: float = 30.0) -> None:
        self.ctx = ctx
        self.provider = provider
        self.backoff = backoff
        self.log = log
        self.stable_after = stable_after
        self._subscribed_at: float | None = None  # this connection's first "subscribed"

    async def run(self, connection: Callable[[], Awaitable[str]], target: str = "") -> NoReturn:
        """Connect again and again; `target` (e.g. host:port) is the "connecting" message."""
        counts = self.ctx.counts
        while True:
            self.status("connecting", message=target)
            counts["connects"] += 1
            self._subscribed_at = None
            reason = await connection()
            self.status("disconnected", message=reason)
            if self._stayed_up():
                self.backoff.reset()
            delay = self.backoff.next()
            self.ctx.metrics.histogram("reconnect_delay_seconds").observe(delay)
            self.log.info("reconnecting", delay_s=round(delay, 3))
            await asyncio.sleep(delay)
            counts["reconnects"] += 1

    def _stayed_up(self) -> bool:
        """The connection that just ended was subscribed for at least `stable_after` s."""
        return (self._subscribed_at is not None
                and time.monotonic() - self._subscribed_at >= self.stable_after)

    def status(self, state: str, code: int = 0, message: str = "", symbol: str = "") -> None:
        """Publish and log a change of state (of one symbol's stream, if `symbol`)."""
        if state not in STATUS_STATES:
            raise ValueError(f"unknown connection state {state!r}")
        if state == "subscribed" and self._subscribed_at is None:
            self._subscribed_at = time.monotonic()
        if state == "error":
            self.ctx.counts["provider_errors", str(code)] += 1
        message = redact(message)[:MAX_MESSAGE]  # a provider may echo the credentials back
        now = time.time_ns()
        self.ctx.publisher.publish(Status(provider=self.provider, symbol=symbol, ts_event=now,
                                          ts_recv=now, state=state, code=code, message=message))
        level = self.log.warning if state in ("error", "disconnected") else self.log.info
        level("connection state", state=state, code=code, message=message,
              **({"symbol": symbol} if symbol else {}))
