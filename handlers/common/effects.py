"""Carrying out a protocol's effects (handlers.common.protocol) for one connection: timers,
HTTP requests and single-symbol resubscribes. Each effect's answer is another call into the
protocol, whose Output goes to `deliver` (the client publishes and sends it).

Resubscribes of a symbol are paced: the first waits RESYNC_FIRST seconds or so, each one that
follows within RESYNC_STABLE seconds waits twice as long (jittered, capped at RESYNC_MAX), so a
symbol whose resync keeps failing backs off; a request for a symbol whose resubscribe is
already pending joins it. `close()` (the connection ended) cancels everything pending.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Callable

from tickmesh.handlers.common.backoff import Backoff
from tickmesh.handlers.common.protocol import (
    ClientProtocol, Effect, HttpRequest, HttpResponse, Output, Resubscribe, Timer,
)

RESYNC_FIRST = 0.1
RESYNC_MAX = 30.0
RESYNC_STABLE = 60.0
HTTP_TIMEOUT = 10.0
HTTP_MAX_BYTES = 16 * 1024 * 1024

Deliver = Callable[[Callable[[], Output]], None]
"""Calls the protocol method given, and delivers its Output (catching what it raises)."""


class _Resync:
    def __init__(self) -> None:
        self.backoff = Backoff(RESYNC_FIRST, RESYNC_MAX)
        self.last = 0.0
        self.pending: asyncio.TimerHandle | None = None


class Effects:
    def __init__(self, protocol: ClientProtocol, deliver: Deliver, counts: Counter,
                 log: Any, http: Any = None) -> None:
        self.protocol = protocol
        self.deliver = deliver
        self.counts = counts
        self.log = log
        self._http = http  # an aiohttp.ClientSession, made at the first request if None
        self._owns_http = http is None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._requests: set[asyncio.Task] = set()
        self._resyncs: dict[str, _Resync] = {}

    def run(self, effects: list[Effect] | tuple[Effect, ...]) -> None:
        for effect in effects:
            if isinstance(effect, Timer):
                self._timer(effect)
            elif isinstance(effect, HttpRequest):
                task = asyncio.ensure_future(self._get(effect))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)
            elif isinstance(effect, Resubscribe):
                self._resubscribe(effect)
            else:
                raise TypeError(f"not an effect: {effect!r}")

    def pending_resubscribe(self, symbol: str) -> bool:
        resync = self._resyncs.get(symbol)
        return bool(resync and resync.pending)

    def close(self) -> None:
        """The connection ended: nothing of it may fire any more."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in self._requests:
            task.cancel()
        for resync in self._resyncs.values():
            if resync.pending:
                resync.pending.cancel()
                resync.pending = None

    async def aclose(self) -> None:
        self.close()
        if self._http is not None and self._owns_http:
            await self._http.close()
            self._http = None

    # --- timers -----------------------------------------------------------------------------

    def _timer(self, timer: Timer) -> None:
        previous = self._timers.pop(timer.key, None)
        if previous:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._timers[timer.key] = loop.call_later(max(0.0, timer.delay), self._fire, timer.key)

    def _fire(self, key: str) -> None:
        del self._timers[key]
        self.counts["timers_fired"] += 1
        self.deliver(lambda: self.protocol.timer(key, time.time_ns()))

    # --- HTTP -------------------------------------------------------------------------------

    async def _get(self, request: HttpRequest) -> None:
        response = await self._fetch(request)
        self.counts["http_requests", str(response.status or "failed")] += 1
        if response.error:
            self.log.warning("HTTP request failed", url=request.url, error=response.error)
        self.deliver(lambda: self.protocol.http_response(response, time.time_ns()))

    async def _fetch(self, request: HttpRequest) -> HttpResponse:
        import aiohttp  # only handlers that make HTTP requests load it

        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))
        try:
            async with self._http.get(request.url, params=list(request.params)) as answer:
                body = await answer.content.read(HTTP_MAX_BYTES + 1)
                if len(body) > HTTP_MAX_BYTES:
                    return HttpResponse(request.key, 0, error=f"over {HTTP_MAX_BYTES} bytes")
                headers = tuple((name.lower(), value) for name, value in answer.headers.items())
                return HttpResponse(request.key, answer.status, body, headers=headers)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return HttpResponse(request.key, 0, error=f"{type(exc).__name__}: {exc}")

    # --- resubscribes -----------------------------------------------------------------------

    def _resubscribe(self, request: Resubscribe) -> None:
        resync = self._resyncs.setdefault(request.symbol, _Resync())
        if resync.pending:
            return  # one is on its way
        loop = asyncio.get_running_loop()
        if loop.time() - resync.last > RESYNC_STABLE:
            resync.backoff.reset()
        delay = resync.backoff.next()
        self.log.info("resubscribing", symbol=request.symbol, reason=request.reason,
                      delay_s=round(delay, 3))
        resync.pending = loop.call_later(delay, self._do_resubscribe, request.symbol)

    def _do_resubscribe(self, symbol: str) -> None:
        resync = self._resyncs[symbol]
        resync.pending = None
        resync.last = asyncio.get_running_loop().time()
        self.counts["resubscribes"] += 1
        self.deliver(lambda: self.protocol.resubscribe(symbol))
