"""A local fake TWS / IB Gateway: the TWS API socket protocol on TCP loopback.

It speaks enough of the real protocol (handlers/ib/tws.py, on the framing of handlers/ib/wire.py)
for ib_async's `IB().connect()` to complete at once, and streams market data, tick-by-tick
trades and quotes, and position-indexed market depth from a book per symbol that follows the
shared market's fair price (handlers/ib/sim/market.py), `rate` market steps per second per
symbol. A duplicate client id gets error 326 and a closed socket; an unknown symbol gets error
200. Bytes that are not the TWS API are counted (`bad_input`) and close that connection.

Test control, outside the TWS API: HTTP GET /control/<action> on the same port (a connection
whose first bytes are `GET ` is answered as HTTP and closed; a TWS client starts with `API\0`):
stats, drop, stall, quiet, error, burst, and IB's connectivity?online=0|1 and bad-depth, as
handlers.common.simcontrol documents for every simulator.

Run it standalone (`tickmesh sim ib --port 7497`, i.e. `cli(argv)`) or supervised
(`python -m tickmesh.handlers.ib.sim.server`, settings from TICKMESH_CHILD: host, port, rate, symbols,
depth_rows, latency, seed).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable

import structlog

from tickmesh.handlers.common import simcontrol, simserver, simulator
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.metrics import flat
from tickmesh.runtime.settings import require
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.handlers.ib.sim.market import Market
from tickmesh.handlers.ib.sim.session import CLOSING_ERRORS, ERRORS, Session, Tws
from tickmesh.handlers.ib.sim import wire
from tickmesh.handlers.ib.sim.wire import WireError

TICK_SECONDS = 0.01
OVERSIZE_PREFIX = (2**31 - 1).to_bytes(4, "big")
GARBAGE = wire.frame(b"no such message\0")
MAX_OVERSIZE_MB = 256
BURST_MAX_STEPS = 100
"""Per message asked, the market steps a burst takes at most."""


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 7497
    rate: float = 20.0
    """Market steps per second per symbol (each a trade, a quote change or a depth change)."""
    depth_rows: int = 10
    latency: float = 0.0
    """Seconds before TWS acts on what a client sends, as a TWS across a network would."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list of strings", self.symbols)
        require(self.depth_rows >= 2, "depth_rows", "an integer >= 2", self.depth_rows)
        require(self.latency >= 0, "latency", "a number >= 0", self.latency)


class _Connection(simserver.Outbox, asyncio.Protocol):
    """One client socket around its sans-I/O session; what it sends goes through its outbox
    (handlers.common.simserver), a write of the messages of one answer or market step."""

    def __init__(self, simulator: "Simulator") -> None:
        super().__init__(simulator.counters)
        self.simulator = simulator
        self.session: Session = simulator.tws.open()
        self.inbox: deque[bytes] = deque()  # received, not yet acted on (latency)
        self.started = False  # the first bytes came, and they were the TWS API
        self.http: bytearray | None = None  # or an HTTP request's head: a test control
        self.sender: asyncio.Task | None = None
        self._writable = asyncio.Event()  # clear while the socket's buffer is full
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.simulator.connections[self.session] = self
        self.sender = asyncio.create_task(self.run())

    def data_received(self, data: bytes) -> None:
        if self.http is not None or (not self.started and data.startswith(simcontrol.HTTP_GET)):
            self._control(data)
            return
        if not self.started:
            self.started = True
            self.simulator.counters["sim_connections"] += 1
        self.inbox.append(data)
        latency = self.simulator.settings.latency
        if latency:
            asyncio.get_running_loop().call_later(latency, self._act)
        else:
            self._act()

    def _act(self) -> None:
        """Act on the oldest data received."""
        data = self.inbox.popleft()
        if self.session.closed or self.closing:
            return
        try:
            replies = self.session.receive(data)
        except WireError as exc:
            self.simulator.bad_input(exc)
            self.end(simserver.Close())
            return
        self.tell(replies)
        if self.session.closed:
            self.simulator.log.info("refused a client", reason="client id in use")
            self.end(simserver.Close())

    def _control(self, data: bytes) -> None:
        """An HTTP request instead of the TWS API: answer it once its head is in, and close."""
        if self.http is None:
            self.http = bytearray()
            self.simulator.forget(self)
        self.http += data
        if b"\r\n\r\n" in self.http or len(self.http) > simcontrol.MAX_REQUEST_BYTES:
            if not self.transport.is_closing():
                self.transport.write(self.simulator.control(bytes(self.http)).http())
                self.transport.close()

    def tell(self, messages: list[bytes]) -> None:
        if messages:
            self.send(b"".join(messages))

    async def write(self, item: bytes) -> None:
        self.transport.write(item)
        await self._writable.wait()

    async def shut(self, close: simserver.Close) -> None:
        self.transport.close()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.sender.cancel()
        if self.http is None:
            self.simulator.forget(self)


class Simulator:
    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        self.settings = settings
        self.counters = counters
        rng = random.Random(settings.seed or None)
        self.tws = Tws([Market(symbol, settings.depth_rows, rng) for symbol in settings.symbols])
        self.connections: dict[Session, _Connection] = {}
        self.log = structlog.get_logger().bind(provider="ib")
        self.quiet_until = 0.0  # time.monotonic(): the markets stand still until then
        self.controls = simcontrol.actions(
            stats=self.stats, drop=self.drop, stall=self.stall, quiet=self.quiet,
            error=self.error, burst=self.burst,
            extra={"connectivity": simcontrol.Action(self.connectivity,
                                                     {"online": simcontrol.flag}),
                   "bad-depth": simcontrol.Action(self.bad_depth),
                   "oversize": simcontrol.Action(self.oversize, {"mb": _megabytes}),
                   "garbage": simcontrol.Action(self.garbage, {"count": simcontrol.count})})

    async def serve(self, ready: Callable[[], None]) -> None:
        """Listen, say ready, and move the markets until cancelled."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), self.settings.host,
                                          self.settings.port)
        self.log.info("simulator listening", host=self.settings.host, port=self.settings.port,
                      symbols=list(self.settings.symbols))
        ready()
        async with server:
            await self._move_markets()

    async def _move_markets(self) -> None:
        loop = asyncio.get_running_loop()
        budget, last = 0.0, loop.time()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            budget += (now - last) * self.settings.rate
            last = now
            steps = int(budget)
            budget -= steps
            if steps and time.monotonic() >= self.quiet_until:
                self._deliver(self.tws.advance(steps))

    def _deliver(self, messages: dict[Session, list[bytes]]) -> None:
        for session, outgoing in messages.items():
            connection = self.connections.get(session)
            if connection is not None:
                connection.tell(outgoing)

    def bad_input(self, exc: WireError) -> None:
        count_bad_input(self.counters, ("bad_input", "tws_api"), self.log,
                        "bad input, closing the connection", error=str(exc)[:200])

    def forget(self, connection: _Connection) -> None:
        """The connection is gone, or was a test control's and never a client."""
        self.tws.close(connection.session)
        self.connections.pop(connection.session, None)

    # --- test control (handlers.common.simcontrol) -----------------------------------------

    def control(self, head: bytes) -> simcontrol.Answer:
        return simcontrol.http_answer(head, self.controls, self.counters)

    def stats(self) -> dict[str, Any]:
        started = [s for s in self.connections if s.client_id is not None]
        return {"connections": len(self.connections), "online": self.tws.online,
                "client_ids": [s.client_id for s in started],
                "subscriptions": [s.subscriptions() for s in started],
                "counters": flat(self.counters)}

    def drop(self) -> dict[str, Any]:
        return simserver.drop_all(self.connections.values())

    def stall(self, seconds: float) -> dict[str, Any]:
        return simserver.stall_all(self.connections.values(), seconds)

    def quiet(self, seconds: float) -> dict[str, Any]:
        self.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.connections)}

    def error(self, code: str) -> dict[str, Any]:
        number = simcontrol.int_code(code, ERRORS)
        messages = self.tws.error(number)
        self._deliver(messages)
        if number in CLOSING_ERRORS:
            for session in messages:
                if session in self.connections:
                    self.connections[session].end(simserver.Close())
        return {"connections": len(messages)}

    def burst(self, count: int) -> dict[str, Any]:
        """Market steps, at once, until every subscribed connection got `count` messages."""
        subscribed = [s for s in self.connections if any(s.streams.values())]
        out: dict[Session, list[bytes]] = defaultdict(list)
        steps = 0
        while self.tws.online and steps < count * BURST_MAX_STEPS and any(
                len(out[s]) < count for s in subscribed):
            for session, messages in self.tws.advance(1).items():
                out[session] += messages
            steps += 1
        self._deliver(out)
        return {"connections": len(subscribed), "steps": steps}

    def connectivity(self, online: bool) -> dict[str, Any]:
        self._deliver(self.tws.set_online(online))
        return {"online": online}

    def bad_depth(self) -> dict[str, Any]:
        self._deliver(self.tws.glitch_depth())
        return {"connections": len(self.connections)}

    def oversize(self, mb: int) -> dict[str, Any]:
        """A hostile TWS: a length prefix of 2 GB, then `mb` MB of what it promises."""
        for connection in self.connections.values():
            connection.send(OVERSIZE_PREFIX + bytes(mb * 1024 * 1024))
        return {"connections": len(self.connections)}

    def garbage(self, count: int) -> dict[str, Any]:
        """`count` well-framed messages that are not the TWS API (an unknown message id)."""
        self._deliver({session: [GARBAGE] * count for session in self.connections})
        return {"connections": len(self.connections)}


def _megabytes(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_OVERSIZE_MB:
        raise simcontrol.ControlError(f"mb must be an integer from 0 to {MAX_OVERSIZE_MB}, "
                                      f"not {text[:64]!r}")
    return int(text)


COMMAND = simulator.Command(
    "ib", Simulator, SimSettings, __doc__.split("\n")[0],
    rate="market steps per second per symbol",
    flags={"--depth-rows": {"type": int},
           "--latency": {"type": float,
                         "help": "seconds before acting on a request, as across a network"}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
