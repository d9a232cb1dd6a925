"""The one server of every simulator: a client's outbox and the loop that sends it, the test
control's drop and stall, and, for the WebSocket simulators (Alpaca, Polygon, Coinbase,
Binance, Kraken), a connection's life and the server itself. A simulator keeps its protocol and its
market; IB's fake TWS, on a raw TCP socket, shares the outbox, drop and stall.

The outbox. Whatever a simulator sends a client waits in that client's outbox, OUTBOX_LIMIT
items at most, and one task sends it, in order, as fast as the socket takes it:
- `send` is for what the market makes and what answers a request: a client that lets its
  outbox fill up is a slow client, counted in sim_slow_clients, told so in the provider's
  words (`slow`: an error, a close code, or nothing) and disconnected;
- `put` waits for room: for what goes as fast as the client reads (replays, Alpaca's blast);
- `end` queues the last frames and the close (what waits ahead of them is dropped if there is
  no room for them); nothing is queued after it.

Stall (`/control/stall?seconds=N`, handlers.common.simcontrol): for N seconds the connection's
socket is not read (its pings go unanswered, its requests wait) and nothing leaves its outbox;
what the simulator sends it meanwhile (data, answers, a burst, a close) is held in the outbox
and goes out, in order, when the stall ends. That is a slow network as a real venue's client
sees it: late, then all at once, nothing lost. A stall long enough to fill the outbox ends as a
slow client does. Losing data is another fault: `drop` (the connection) or a provider's `gap`
(one message).

A WebSocket simulator subclasses `WebSocketSimulator` (the connection's life, the controls'
common part, serving) and `Client` (one connection), and defines `connect`, and `request` or
its own `receive`; its module ends with `simulator.Command(...)` (handlers.common.simulator).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Awaitable, Callable, Collection, Coroutine, Generic, NamedTuple, TypeVar

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tickmesh.handlers.common import simcontrol
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import flat

OUTBOX_LIMIT = 10_000
"""Items waiting for one client (frames; IB: writes) before it is dropped as a slow client."""
CLOSE_TIMEOUT_S = 0.5
"""How long a client gets to answer the close frame (a stalled one does not)."""
POLICY_VIOLATION = 1008


class Close(NamedTuple):
    """In an outbox: close the connection once what is ahead of it is sent (WebSocket: with
    this code and reason)."""

    code: int = 1000
    reason: str = ""


class Outbox(ABC):
    """What goes out to one client. A subclass gives `transport` and says how an item is
    written (`write`), how the connection closes (`shut`) and how a slow client is told
    (`slow`; here: not at all, the connection is aborted)."""

    transport: asyncio.Transport

    def __init__(self, counters: Counter) -> None:
        self.counters = counters
        self.items: asyncio.Queue[Any] = asyncio.Queue(OUTBOX_LIMIT)
        self.closing = False  # the close is queued: nothing more goes in
        self._flowing = asyncio.Event()  # clear while stalled
        self._flowing.set()
        self._stalls = 0

    @abstractmethod
    async def write(self, item: Any) -> None: ...

    @abstractmethod
    async def shut(self, close: Close) -> None: ...

    def slow(self) -> None:
        self.drop()

    async def run(self) -> None:
        """Send what comes, in order, holding it while stalled, until a Close is sent."""
        while True:
            item = await self.items.get()
            await self._flowing.wait()
            if isinstance(item, Close):
                await self.shut(item)
                return
            await self.write(item)

    def send(self, item: Any) -> bool:
        """Queue `item`; False if it will not go: the connection closes, or this client is too
        slow (it is then told and disconnected)."""
        if self.closing:
            return False
        try:
            self.items.put_nowait(item)
        except asyncio.QueueFull:
            self.counters["sim_slow_clients"] += 1
            log().warning("disconnecting a slow client", waiting=self.items.qsize())
            self.slow()
            return False
        return True

    async def put(self, item: Any) -> None:
        """Queue `item` once there is room (as fast as the client reads)."""
        if not self.closing:
            await self.items.put(item)

    def end(self, close: Close, *last: Any) -> None:
        """Send `last`, then close (if there is no room for them, what waits is dropped)."""
        if self.closing:
            return
        self.closing = True
        if self.items.maxsize - self.items.qsize() <= len(last):
            while not self.items.empty():
                self.items.get_nowait()
        for item in (*last, close):
            self.items.put_nowait(item)

    def drop(self) -> None:
        """Abort the connection: no close, no goodbye."""
        self.transport.abort()

    def stall(self, seconds: float) -> None:
        """Nothing read, nothing sent for `seconds` (from now: a later stall replaces this
        one); then what was held goes out."""
        self._stalls += 1
        self._flowing.clear()
        self.transport.pause_reading()
        asyncio.get_running_loop().call_later(seconds, self._end_stall, self._stalls)

    def _end_stall(self, stall: int) -> None:
        if stall != self._stalls:
            return
        self._flowing.set()
        if not self.transport.is_closing():
            self.transport.resume_reading()


def drop_all(clients: Collection[Outbox]) -> dict[str, Any]:
    """The `drop` control: abort every connection."""
    for client in list(clients):
        client.drop()
    return {"connections": len(clients)}


def stall_all(clients: Collection[Outbox], seconds: float) -> dict[str, Any]:
    """The `stall` control (the module's doc says what a stall is)."""
    for client in clients:
        client.stall(seconds)
    return {"connections": len(clients)}


# --- WebSocket simulators ------------------------------------------------------------------

class Client(Outbox):
    """One WebSocket connection: its outbox, its quiet, and what runs beside it (tasks and
    timers, cancelled when it ends)."""

    text: bool | None = None
    """How a frame goes out: None, a str as text and bytes as binary; True or False: as that."""

    def __init__(self, ws: ServerConnection, number: int, counters: Counter) -> None:
        super().__init__(counters)
        self.ws = ws
        self.transport = ws.transport
        self.number = number
        self.quiet_until = 0.0  # time.monotonic(): no data goes out until then
        self._beside: list[asyncio.Task | asyncio.TimerHandle] = []

    @property
    def quiet(self) -> bool:
        return time.monotonic() < self.quiet_until

    @abstractmethod
    def subscriptions(self) -> Any:
        """What it subscribed to, in the provider's terms (for stats)."""

    async def write(self, item: Any) -> None:
        await self.ws.send(item, text=self.text)
        self.counters["sim_frames_sent"] += 1

    async def shut(self, close: Close) -> None:
        await self.ws.close(close.code, close.reason)

    async def run(self) -> None:
        try:
            await super().run()
        except ConnectionClosed:
            pass  # the reader sees it too and ends the connection

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task:
        """Run `work` beside the connection, until it ends."""
        task = asyncio.create_task(work)
        self._beside.append(task)
        return task

    def later(self, seconds: float, callback: Callable[..., None], *args: Any
              ) -> asyncio.TimerHandle:
        """Call `callback(*args)` in `seconds`, unless the connection has ended by then."""
        timer = asyncio.get_running_loop().call_later(seconds, callback, *args)
        self._beside.append(timer)
        return timer

    def ended(self) -> None:
        for work in self._beside:
            work.cancel()


C = TypeVar("C", bound=Client)


class WebSocketSimulator(ABC, Generic[C]):
    """What a WebSocket simulator shares: its clients, a connection's life (`connect`, the
    outbox's task, `receive` until it closes, `disconnected`), the test control (drop, stall,
    quiet per connection, the common part of stats) and serving (`serve`: listen, say ready,
    `run_market` until cancelled)."""

    url_path = ""
    """Of the URL the listening log line shows."""

    def __init__(self, settings: SimulatorSettings, counters: Counter, provider: str,
                 extra: dict[str, simcontrol.Action] | None = None) -> None:
        self.settings = settings
        self.counters = counters
        self.log = log().bind(provider=provider)
        self.clients: dict[C, None] = {}  # open ones, oldest first
        self.accepted = 0
        self.controls = simcontrol.actions(
            stats=self.stats, drop=self.drop, stall=self.stall, quiet=self.quiet,
            error=self.error, burst=self.burst, extra=extra)

    # --- a connection ----------------------------------------------------------------------

    @abstractmethod
    def connect(self, ws: ServerConnection, number: int) -> C:
        """The client of a new connection (queue its greeting, start its timers)."""

    def request(self, client: C, data: str | bytes) -> None:
        """One message from the client (for `receive`; a simulator with its own needs none)."""
        raise NotImplementedError

    async def receive(self, client: C) -> None:
        """Read until the connection closes."""
        async for data in client.ws:
            self.request(client, data)

    def disconnected(self, client: C) -> None:
        """The connection has ended."""

    async def handle(self, ws: ServerConnection) -> None:
        self.accepted += 1
        self.counters["sim_connections"] += 1
        client = self.connect(ws, self.accepted)
        self.clients[client] = None
        client.spawn(client.run())
        try:
            await self.receive(client)
        except ConnectionClosed:
            pass
        finally:
            del self.clients[client]
            client.ended()
            self.disconnected(client)

    # --- HTTP ------------------------------------------------------------------------------

    def process_request(self, connection: ServerConnection, request: Request
                        ) -> Response | None | Awaitable[Response | None]:
        """The test control, or what `route` says."""
        if simcontrol.is_control(request.path):
            answer = simcontrol.answer(request.path, self.controls, self.counters)
            return simcontrol.respond(connection, answer)
        return self.route(connection, request)

    def route(self, connection: ServerConnection, request: Request
              ) -> Response | None | Awaitable[Response | None]:
        """Any other request: None upgrades it to the feed (here, at every path)."""
        return None

    # --- test control ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.clients), "accepted": self.accepted,
                "subscriptions": [client.subscriptions() for client in self.clients],
                "counters": flat(self.counters)}

    def drop(self) -> dict[str, Any]:
        return drop_all(self.clients)

    def stall(self, seconds: float) -> dict[str, Any]:
        return stall_all(self.clients, seconds)

    def quiet(self, seconds: float) -> dict[str, Any]:
        """No data to the connections open now for `seconds` (they still answer)."""
        for client in self.clients:
            client.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.clients)}

    @abstractmethod
    def error(self, code: str) -> dict[str, Any]: ...

    @abstractmethod
    def burst(self, count: int) -> dict[str, Any]: ...

    # --- serving ---------------------------------------------------------------------------

    def serve_options(self) -> dict[str, Any]:
        """The provider's own options of websockets' serve (compression, max_size...)."""
        return {}

    async def serve(self, ready: Callable[[], None]) -> None:
        """Listen, say ready, run the market until cancelled."""
        async with serve(self.handle, self.settings.host, self.settings.port,
                         process_request=self.process_request, close_timeout=CLOSE_TIMEOUT_S,
                         **self.serve_options()) as server:
            port = server.sockets[0].getsockname()[1]
            self.log.info("simulator listening", url=f"ws://{self.settings.host}:{port}"
                          f"{self.url_path}", symbols=list(self.settings.symbols))
            ready()
            await self.run_market()

    async def run_market(self) -> None:
        """Until cancelled (here: nothing; a market that runs per connection runs there)."""
        await asyncio.Future()
