"""The reconnecting WebSocket client: connect, drive a provider's protocol, publish, repeat.

    protocol = MyProtocol(counters=ctx.counts)                     # a ClientProtocol
    await ReconnectingClient(ctx, protocol, settings).run()        # settings: ClientSettings

For each connection: publish Status "connecting", open the WebSocket (with the protocol's
headers), send what `protocol.start()` asks, then feed every message to `protocol.receive`,
publish its events, send its replies, publish its state changes, carry out its effects
(handlers.common.effects: timers, HTTP requests, single-symbol resubscribes), and close when
it says so. Control requests addressed to the provider over the bus (`control.<provider>`)
go to `protocol.control` while a connection is up. Whatever a protocol call raises is caught,
counted (`protocol_faults`) and logged rate-limited, and that one input is skipped: the
connection and the process go on. A problem's text is logged with every known secret masked
first, then cut to MAX_PROBLEM characters.

A connection is dead when it closes, when a WebSocket ping goes unanswered for `ping_timeout`
seconds, or when no frame at all arrives for `stale_after` seconds (0 turns that off). Then:
Status "disconnected" with the reason, a jittered, capped exponential backoff (reset only when
a connection ends that stayed subscribed for `stable_after` seconds), and a new connection,
where the protocol authenticates and subscribes again from scratch. The Status events and the
backoff are handlers.common.lifecycle's.

Settings (`ClientSettings`, which a handler's own settings extend): url, stale_after,
backoff_min, backoff_max, stable_after, ping_interval, ping_timeout, open_timeout. Metrics
(runtime.metrics): connects, reconnects, frames_received, provider_errors, stale_connections,
protocol_faults, protocol_problems, timers_fired, http_requests, resubscribes, control_requests, and bad_input
(the protocol counts the reasons; "unpublishable": an event the bus cannot carry, e.g. a
symbol containing '|', dropped here).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable, NoReturn

import structlog
from websockets.exceptions import ConnectionClosed, WebSocketException

from tickmesh.bus.events import Bar, Control, Event
from tickmesh.handlers.common.backoff import BackoffSettings
from tickmesh.handlers.common.control import listen_for_control
from tickmesh.handlers.common.effects import Effects
from tickmesh.handlers.common.lifecycle import Lifecycle
from tickmesh.handlers.common.protocol import ClientProtocol, Output
from tickmesh.handlers.common.websocket import Connection, Timeouts, connect
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.logs import log
from tickmesh.runtime.process import ProcessContext
from tickmesh.runtime.secrets import redact
from tickmesh.runtime.metrics import EVENT_LATENCY
from tickmesh.runtime.settings import require

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_PROBLEM = 300
"""Characters of a problem's text that are logged (after masking secrets)."""


@dataclass(frozen=True, kw_only=True)
class ClientSettings(BackoffSettings):
    """The client's keys of a handler's settings table (read with runtime.settings)."""

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
        self._log = log().bind(url=settings.url)
        self.lifecycle = Lifecycle(ctx, protocol.provider, settings.backoff(), self._log,
                                   settings.stable_after)
        self.effects = Effects(protocol, self._deliver, ctx.counts, self._log)
        self._ws: Connection | None = None
        self._last_frame = 0.0
        self._close_reason = ""
        self._applying: set[asyncio.Task] = set()

    async def run(self) -> None:
        """Connect, stream, and reconnect, until cancelled."""
        # the provider, in every line from here on: the websockets library's too
        structlog.contextvars.bind_contextvars(provider=self.protocol.provider)
        controls = asyncio.create_task(
            listen_for_control(self.ctx, self.protocol.provider, self._control), name="control")
        try:
            await self.lifecycle.run(self._connection)
        finally:
            controls.cancel()
            await self.effects.aclose()

    async def _connection(self) -> str:
        """One connection's life; returns why it ended."""
        self._close_reason = ""
        try:
            timeouts = Timeouts(open=self.settings.open_timeout or None,
                                ping_interval=self.settings.ping_interval or None,
                                ping_timeout=self.settings.ping_timeout or None)
            async with connect(self.settings.url, self.protocol.headers(), timeouts,
                               MAX_MESSAGE_BYTES) as ws:
                return await self._session(ws)
        except (OSError, TimeoutError, WebSocketException) as exc:
            return self._close_reason or f"{type(exc).__name__}: {exc}"
        finally:
            self._ws = None
            self.effects.close()

    async def _session(self, ws: Connection) -> str:
        self._ws = ws
        self._last_frame = asyncio.get_running_loop().time()
        watchdog = asyncio.create_task(self._watch(ws)) if self.settings.stale_after else None
        try:
            start = self._call(self.protocol.start)
            if start is not None:
                await self._apply(ws, start)
            await self._pump(ws)
        except ConnectionClosed as exc:
            return self._close_reason or str(exc)
        finally:
            if watchdog is not None:
                watchdog.cancel()

    async def _pump(self, ws: Connection) -> NoReturn:
        """The hot path: frame -> protocol -> bus, with nothing per event but the publish.
        Ends only by raising ConnectionClosed."""
        recv, receive, publish = ws.recv, self.protocol.receive, self._publish
        counts = self.ctx.counts
        latency = self.ctx.metrics.histogram(EVENT_LATENCY).observe  # a frame's first event
        clock = asyncio.get_running_loop().time
        time_ns = time.time_ns
        while True:
            frames = await recv()
            self._last_frame = clock()
            counts["frames_received"] += len(frames)
            for frame in frames:
                now = time_ns()
                try:
                    out = receive(frame, now)
                except Exception as exc:  # a protocol bug must not end the connection
                    self._fault(exc, "receive")
                    continue
                if out.events:
                    if type(out.events[0]) is not Bar:  # a bar's time is its start
                        latency((now - out.events[0].ts_event) * 1e-9)
                    publish(out.events)
                if out.replies or out.changes or out.problem or out.close or out.effects:
                    await self._apply(ws, out)
                    if out.close:
                        break  # the rest is not read: the next recv() raises

    async def _apply(self, ws: Connection, out: Output) -> None:
        """Everything but the events: problems, state changes, effects, replies, a close."""
        if out.problem:
            self._problem(out.problem)
        for change in out.changes:
            self.lifecycle.status(change.state, change.code, change.message, change.symbol)
        if out.effects:
            self.effects.run(out.effects)
        for reply in out.replies:
            await ws.send(reply)
        if out.close:
            last = out.changes[-1] if out.changes else None
            self._close_reason = (f"closed after error {last.code}: {last.message}"
                                  if last and last.state == "error" else "closed by protocol")
            await ws.close()

    def _publish(self, events: list[Event]) -> None:
        """All of `events` onto the bus but those that cannot have a topic (e.g. a symbol
        with '|'), counted and told."""
        for event, problem in self.ctx.publisher.publish_many(events):
            self.ctx.counts["bad_input", "unpublishable"] += 1
            self._problem(f"cannot publish {type(event).__name__}: {problem}")

    def _deliver(self, call: Callable[[], Output]) -> None:
        """An effect's answer or a control request: call the protocol, then publish and apply
        its Output on the current connection (if it is still there)."""
        out = self._call(call)
        ws = self._ws
        if out is None or ws is None:
            return
        self._publish(out.events)
        task = asyncio.ensure_future(self._apply_quietly(ws, out))
        self._applying.add(task)
        task.add_done_callback(self._applying.discard)

    async def _apply_quietly(self, ws: Connection, out: Output) -> None:
        try:
            await self._apply(ws, out)
        except ConnectionClosed:
            pass  # the pump sees it too, and ends the connection

    def _call(self, call: Callable[[], Output]) -> Output | None:
        try:
            return call()
        except Exception as exc:
            self._fault(exc, getattr(call, "__name__", "call"))
            return None

    def _control(self, request: Control) -> None:
        """A control request from the bus (handlers.common.control), for the protocol."""
        if self._ws is None:
            self._log.info("control request while not connected: ignored",
                           action=request.action, symbol=request.symbol)
            return
        self._deliver(lambda: self.protocol.control(request, time.time_ns()))

    async def _watch(self, ws: Connection) -> None:
        """Abort the connection when no frame has arrived for stale_after seconds."""
        clock = asyncio.get_running_loop().time
        limit = self.settings.stale_after
        while True:
            idle = clock() - self._last_frame
            if idle >= limit:
                self.ctx.counts["stale_connections"] += 1
                self._close_reason = f"stale: no frame for {limit:g} s"
                ws.abort()
                return
            await asyncio.sleep(limit - idle)

    def _fault(self, exc: Exception, where: str) -> None:
        count_bad_input(self.ctx.counts, "protocol_faults", self._log,
                        "the protocol raised: input skipped", where=where, exc_info=exc)

    def _problem(self, problem: str) -> None:
        count_bad_input(self.ctx.counts, "protocol_problems", self._log,
                        "bad input from the provider", problem=redact(problem)[:MAX_PROBLEM])
