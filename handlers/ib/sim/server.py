"""A local fake TWS / IB Gateway: the TWS API socket protocol on TCP loopback.

It speaks enough of the real protocol (handlers/ib/tws.py, on the framing of handlers/ib/wire.py)
for ib_async's `IB().connect()` to complete at once, and streams market data, tick-by-tick
trades and quotes, and position-indexed market depth from a random-walk book per symbol
(handlers/ib/market.py), `rate` market steps per second per symbol. A duplicate client id gets
error 326 and a closed socket; an unknown symbol gets error 200. Bytes that are not the TWS
API are counted (`bad_input`) and close that connection.

Test control, as signals (the TWS API has no room for a side channel):
    SIGUSR1   toggle IB's connectivity: error 1100 to every client and the markets stop; on the
              next SIGUSR1, error 1102 (restored, data maintained) and they move again
    SIGUSR2   drop every client connection at once (the listener stays up)
    SIGHUP    send every depth subscription one update past its last row (a faulty TWS)
A TWS restart is a process restart: kill the simulator, start it again on the same port.

Run it standalone (`tickmesh sim ib --port 7497`, i.e. `cli(argv)`) or supervised
(`python -m handlers.ib.sim.server`, settings from TICKMESH_CHILD: host, port, rate, symbols,
depth_rows, latency, seed).
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

import structlog

from handlers.common import simulator
from runtime.badinput import count_bad_input
from runtime.settings import require
from handlers.common.simulator import SimulatorSettings
from handlers.ib.sim.market import Market
from handlers.ib.sim.session import Session, Tws
from handlers.ib.sim.wire import WireError

TICK_SECONDS = 0.01
WRITE_BUFFER_LIMIT = 8 * 1024 * 1024  # bytes queued for one client before it is dropped as slow


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


class _Connection(asyncio.Protocol):
    """One client socket around its sans-I/O session."""

    def __init__(self, simulator: "Simulator") -> None:
        self.simulator = simulator
        self.session: Session = simulator.tws.open()
        self.transport: asyncio.Transport | None = None
        self.inbox: deque[bytes] = deque()  # received, not yet acted on (latency)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.simulator.connections[self.session] = self
        self.simulator.counters["sim_connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.inbox.append(data)
        latency = self.simulator.settings.latency
        if latency:
            asyncio.get_running_loop().call_later(latency, self._act)
        else:
            self._act()

    def _act(self) -> None:
        """Act on the oldest data received."""
        data = self.inbox.popleft()
        if self.session.closed or self.transport.is_closing():
            return
        try:
            replies = self.session.receive(data)
        except WireError as exc:
            self.simulator.bad_input(exc)
            self.transport.close()
            return
        self.send(replies)
        if self.session.closed:
            self.simulator.log.info("refused a client", reason="client id in use")
            self.transport.close()

    def send(self, messages: list[bytes]) -> None:
        if not messages or self.transport.is_closing():
            return
        self.transport.write(b"".join(messages))
        if self.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            self.simulator.counters["sim_slow_clients"] += 1
            self.simulator.log.warning("dropping a slow client", client_id=self.session.client_id)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.simulator.tws.close(self.session)
        self.simulator.connections.pop(self.session, None)


class Simulator:
    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        self.settings = settings
        self.counters = counters
        rng = random.Random(settings.seed or None)
        self.tws = Tws([Market(symbol, settings.depth_rows, rng, price=rng.uniform(50, 500))
                        for symbol in settings.symbols])
        self.connections: dict[Session, _Connection] = {}
        self.log = structlog.get_logger().bind(provider="ib")

    async def run(self, ready: Callable[[], None]) -> None:
        """Listen, say ready, and move the markets until cancelled."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), self.settings.host,
                                          self.settings.port)
        loop.add_signal_handler(signal.SIGUSR1, self.toggle_connectivity)
        loop.add_signal_handler(signal.SIGUSR2, self.drop_clients)
        loop.add_signal_handler(signal.SIGHUP, self.glitch_depth)
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
            if steps:
                self._deliver(self.tws.advance(steps))

    def _deliver(self, messages: dict[Session, list[bytes]]) -> None:
        for session, outgoing in messages.items():
            connection = self.connections.get(session)
            if connection is not None:
                connection.send(outgoing)

    def bad_input(self, exc: WireError) -> None:
        count_bad_input(self.counters, ("bad_input", "tws_api"), self.log,
                        "bad input, closing the connection", error=str(exc)[:200])

    def toggle_connectivity(self) -> None:
        self._deliver(self.tws.set_online(not self.tws.online))
        self.log.info("control: IB connectivity", online=self.tws.online)

    def glitch_depth(self) -> None:
        self._deliver(self.tws.glitch_depth())
        self.log.info("control: one impossible depth update per depth subscription")

    def drop_clients(self) -> None:
        self.log.info("control: dropping every client", count=len(self.connections))
        for connection in list(self.connections.values()):
            connection.transport.abort()


async def run_server(settings: SimSettings, counters: Counter,
                     ready: Callable[[], None]) -> None:
    """Serve until cancelled; `ready()` once listening."""
    await Simulator(settings, counters).run(ready)


# --- entry points -------------------------------------------------------------------------

Settings = SimSettings


def main() -> None:
    """Supervised: settings from TICKMESH_CHILD."""
    simulator.run_child(run_server, SimSettings)


def cli(argv: list[str]) -> None:
    """`tickmesh sim ib [--host] [--port] [--rate] [--symbols] [--seed] [--depth-rows]
    [--latency]`: standalone, no bus."""
    parser = simulator.parser("ib", __doc__.split("\n")[0],
                              rate="market steps per second per symbol")
    parser.add_argument("--depth-rows", type=int)
    parser.add_argument("--latency", type=float,
                        help="seconds before acting on a request, as across a network")
    simulator.run_cli(parser, argv, SimSettings, run_server)


if __name__ == "__main__":
    main()
