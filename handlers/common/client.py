"""The reconnecting WebSocket client: connect, drive a provider's protocol, publish, repeat.

    protocol = MyProtocol(counters=ctx.counters)                  # a ClientProtocol
    await ReconnectingClient(ctx, protocol, settings).run()        # settings: ClientSettings

For each connection: publish Status "connecting", open the WebSocket (with the protocol's
headers), send what `protocol.start()` asks, then feed every message to `protocol.receive`,
publish its events, send its replies, publish its state changes, and close when it says so.
A connection is dead when it closes, when a WebSocket ping goes unanswered for `ping_timeout`
seconds, or when no frame at all arrives for `stale_after` seconds (0 turns that off). Then:
Status "disconnected" with the reason, a jittered, capped exponential backoff (reset once the
protocol reports "subscribed"), and a new connection, where the protocol authenticates and
subscribes again from scratch. The Status events, the backoff and the connects, reconnects
and errors counters are handlers.common.lifecycle's.

Settings (`ClientSettings`, which a handler's own settings extend): url, stale_after,
backoff_min, backoff_max, ping_interval, ping_timeout, open_timeout. Counters: connects,
reconnects, frames, events, errors (provider errors), stale, problems (bad input; the protocol
counts the details), malformed (also: events the bus cannot carry, e.g. a symbol containing
'|', are dropped here).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import NoReturn

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bus.process import ProcessContext, log
from bus.topics import TopicError
from handlers.common.backoff import BackoffSettings
from handlers.common.badinput import count_bad_input
from handlers.common.lifecycle import Lifecycle
from handlers.common.protocol import ClientProtocol, Output
from handlers.common.settings import require

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ClientSettings(BackoffSettings):
    """The client's keys of a handler's settings table (read with handlers.common.settings)."""

    url: str
    stale_after: float = 30.0
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.url.startswith(("ws://", "wss://")), "url", "a ws:// or wss:// address",
                self.url)
        for key in ("stale_after", "ping_interval", "ping_timeout", "open_timeout"):
            require(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))


class ReconnectingClient:
    def __init__(self, ctx: ProcessContext, protocol: ClientProtocol,
                 settings: ClientSettings) -> None:
        self.ctx = ctx
        self.protocol = protocol
        self.settings = settings
        self._log = log().bind(provider=protocol.provider, url=settings.url)
        self.lifecycle = Lifecycle(ctx, protocol.provider, settings.backoff(), self._log)
        self._last_frame = 0.0
        self._close_reason = ""

    async def run(self) -> None:
        """Connect, stream, and reconnect, until cancelled."""
        await self.lifecycle.run(self._connection)

    async def _connection(self) -> str:
        """One connection's life; returns why it ended."""
        self._close_reason = ""
        try:
            async with connect(
                self.settings.url,
                additional_headers=self.protocol.headers(),
                compression=None,
                open_timeout=self.settings.open_timeout or None,
                ping_interval=self.settings.ping_interval or None,
                ping_timeout=self.settings.ping_timeout or None,
                close_timeout=1,
                max_size=MAX_MESSAGE_BYTES,
            ) as ws:
                return await self._session(ws)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return self._close_reason or f"{type(exc).__name__}: {exc}"

    async def _session(self, ws: ClientConnection) -> str:
        self._last_frame = asyncio.get_running_loop().time()
        watchdog = asyncio.create_task(self._watch(ws)) if self.settings.stale_after else None
        try:
            await self._apply(ws, self.protocol.start())
            await self._pump(ws)
        except ConnectionClosed as exc:
            return self._close_reason or str(exc)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def _pump(self, ws: ClientConnection) -> NoReturn:
        """The hot path: frame -> protocol -> bus, with nothing per event but the publish.
        Ends only by raising ConnectionClosed."""
        recv, receive, publish = ws.recv, self.protocol.receive, self.ctx.publisher.publish
        counters = self.ctx.counters
        clock = asyncio.get_running_loop().time
        time_ns = time.time_ns
        while True:
            frame = await recv(decode=False)
            out = receive(frame, time_ns())
            self._last_frame = clock()
            counters["frames"] += 1
            if out.events:
                counters["events"] += len(out.events)
                for event in out.events:
                    try:
                        publish(event)
                    except TopicError as exc:  # e.g. a symbol with '|': not for the bus
                        counters["malformed"] += 1
                        self._problem(f"cannot publish {type(event).__name__}: {exc}")
            if out.replies or out.changes or out.problem or out.close:
                await self._apply(ws, out)

    async def _apply(self, ws: ClientConnection, out: Output) -> None:
        """Everything but the events: problems, state changes, replies, a requested close."""
        if out.problem:
            self._problem(out.problem)
        for change in out.changes:
            self.lifecycle.status(change.state, change.code, change.message)
        for reply in out.replies:
            await ws.send(reply)
        if out.close:
            last = out.changes[-1] if out.changes else None
            self._close_reason = (f"closed after error {last.code}: {last.message}"
                                  if last and last.state == "error" else "closed by protocol")
            await ws.close()

    async def _watch(self, ws: ClientConnection) -> None:
        """Abort the connection when no frame has arrived for stale_after seconds."""
        clock = asyncio.get_running_loop().time
        limit = self.settings.stale_after
        while True:
            idle = clock() - self._last_frame
            if idle >= limit:
                self.ctx.counters["stale"] += 1
                self._close_reason = f"stale: no frame for {limit:g} s"
                ws.transport.abort()
                return
            await asyncio.sleep(limit - idle)

    def _problem(self, problem: str) -> None:
        count_bad_input(self.ctx.counters, "problems", self._log, "bad input from the provider",
                        problem=problem)
