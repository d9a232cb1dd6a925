"""A faithful local Alpaca market-data stream v2 (`wss://stream.data.alpaca.markets/v2/{feed}`),
served as ws:// for demos, tests and benchmarks.

Run it supervised (`python -m tickmesh.handlers.alpaca.sim.server`, settings from TICKMESH_CHILD) or by
hand (`tickmesh sim alpaca [--host H] [--port P] [--rate R] [--symbols A,B] [--seed S]
[--replay FILE] [--blast N]`, i.e. `cli(argv)`). Any `/v2/{feed}` path is served (iex, sip,
test, ...). The protocol is handlers.alpaca.sim.session's; this module only does the I/O and the data.

Each connection gets JSON text frames, or binary msgpack frames if its upgrade request says
`Content-Type: application/msgpack`. Once it has subscribed, it gets, filtered by its
subscription and batched per 20 ms tick into frames of several messages, either
- a random walk of trades and quotes over `symbols` at `rate` messages/s (default), or
- the frames of the `replay` file (one recorded JSON frame per line), paced at `rate`, or
- with `blast` N > 0: N pre-built frames of 10 trades over `symbols` (default 100 symbols
  S000..S099), as fast as the socket takes them, unfiltered (the benchmark's input; built
  when first needed in an encoding, then reused for every connection). They are WebSocket
  frames serialized in advance, BLAST_WRITE_FRAMES to a socket write, so that the blaster
  costs next to nothing on a machine it shares with the handler it feeds.

Settings: host ("127.0.0.1"), port (8765), rate (100), symbols, replay, blast, seed (of the
simulator's own details: sizes, exchanges, the message mix; 0: new every run; prices follow
the shared market whatever the seed); the account: key_env / secret_env (names of environment
variables holding the only credentials accepted; unset: any), feeds (feeds the account may
use; empty: all), max_connections (authenticated connections at once; 0: no limit),
symbol_limit (0: none), auth_timeout (10 s).

Test control, outside the protocol: HTTP GET /control/<action> on the same port (stats, drop,
stall, quiet, error, burst), as handlers.common.simcontrol documents for every simulator.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Coroutine
from http import HTTPStatus

from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import flat
from tickmesh.runtime.secrets import secret_from_env
from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim import replay
from tickmesh.handlers.alpaca.sim.market import BLAST_SYMBOLS, DEFAULT_SYMBOLS, Item, Market, build_blast_frames
from tickmesh.handlers.alpaca.sim.session import Account, Registry, Reply, ServerSession
from tickmesh.handlers.common import simcontrol, simulator
from tickmesh.runtime.settings import CommaStrings, require
from tickmesh.handlers.common.simulator import SimulatorSettings

TICK_S = 0.02
CLOSE_TIMEOUT_S = 0.5
"""At shutdown, how long a client gets to answer the close frame (a stalled one never does)."""
PATH = re.compile(r"^/v2/([A-Za-z0-9_]+)/?$")
BLAST_WRITE_FRAMES = 64
BURST_FRAME_MESSAGES = 100
BURST_TRIES = 100
"""Market batches looked at for a burst's messages, at most (a connection may want few)."""


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 8765
    rate: float = 100.0
    symbols: CommaStrings = ()
    replay: str = ""
    blast: int = 0
    key_env: str = ""
    secret_env: str = ""
    feeds: CommaStrings = ()
    max_connections: int = 0
    symbol_limit: int = 0
    auth_timeout: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.auth_timeout > 0, "auth_timeout", "a number > 0", self.auth_timeout)

    @property
    def market_symbols(self) -> tuple[str, ...]:
        return self.symbols or (BLAST_SYMBOLS if self.blast else DEFAULT_SYMBOLS)


def _feed(path: str) -> str:
    """The feed of a /v2/{feed} path (query ignored), or "" if the path is not one."""
    match = PATH.match(path.split("?", 1)[0])
    return match.group(1) if match else ""


class Simulator:
    """What all connections share: settings, the account, the market, the recorded frames."""

    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        self.settings = settings
        self.counters = counters
        self.account = Account(
            key=secret_from_env(settings.key_env) if settings.key_env else "",
            secret=secret_from_env(settings.secret_env) if settings.secret_env else "",
            feeds=settings.feeds, symbol_limit=settings.symbol_limit,
        )
        self.registry = Registry(settings.max_connections)
        self.market = Market(settings.market_symbols, seed=settings.seed or None)
        self.replay = replay.load(settings.replay) if settings.replay else []
        self._blast_writes: dict[str, list[bytes]] = {}
        self.connections: dict[Connection, None] = {}  # open ones, oldest first
        self.controls = simcontrol.actions(stats=self.stats, drop=self.drop, stall=self.stall,
                                           quiet=self.quiet, error=self.error, burst=self.burst)

    def blast_writes(self, encoding: str) -> list[bytes]:
        """The blast as serialized WebSocket frames (server frames are not masked), joined
        BLAST_WRITE_FRAMES to a write; built at its first use in each encoding, then reused."""
        if encoding not in self._blast_writes:
            opcode = Opcode.TEXT if encoding == wire.JSON else Opcode.BINARY
            frames = [Frame(opcode, frame).serialize(mask=False) for frame in build_blast_frames(
                self.settings.blast, self.settings.market_symbols, encoding)]
            self._blast_writes[encoding] = [b"".join(frames[i:i + BLAST_WRITE_FRAMES])
                                            for i in range(0, len(frames), BLAST_WRITE_FRAMES)]
        return self._blast_writes[encoding]

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """The test control, a WebSocket upgrade on /v2/{feed}, or 404."""
        if simcontrol.is_control(request.path):
            answer = simcontrol.answer(request.path, self.controls, self.counters)
            return simcontrol.respond(connection, answer)
        if _feed(request.path):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, "not found: use /v2/{feed}\n")

    async def handle(self, ws: ServerConnection) -> None:
        connection = Connection(self, ws)
        self.connections[connection] = None
        self.counters["sim_connections"] += 1
        log().info("client connected", feed=connection.session.feed,
                           encoding=connection.encoding)
        try:
            await connection.run()
        except ConnectionClosed:
            pass
        finally:
            del self.connections[connection]
            connection.session.close()
            log().info("client gone", frames=connection.data_frames)

    # --- test control (handlers.common.simcontrol) -----------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"connections": len(self.connections),
                "subscriptions": [c.subscriptions() for c in self.connections],
                "counters": flat(self.counters)}

    def drop(self) -> dict[str, Any]:
        for connection in self.connections:
            connection.ws.transport.abort()
        return {"connections": len(self.connections)}

    def stall(self, seconds: float) -> dict[str, Any]:
        for connection in self.connections:
            connection.stall(seconds)
        return {"connections": len(self.connections)}

    def quiet(self, seconds: float) -> dict[str, Any]:
        for connection in self.connections:
            connection.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.connections)}

    def error(self, code: str) -> dict[str, Any]:
        number = simcontrol.int_code(code, wire.ERRORS)
        for connection in self.connections:
            connection.spawn(connection.reply(connection.session.error(number)))
        return {"connections": len(self.connections)}

    def burst(self, count: int) -> dict[str, Any]:
        subscribed = [c for c in self.connections if c.subscribed.is_set()]
        for connection in subscribed:
            connection.spawn(connection.burst(count))
        return {"connections": len(subscribed)}


class Connection:
    """One client: the session's replies, the auth deadline, and the data once subscribed."""

    def __init__(self, sim: Simulator, ws: ServerConnection) -> None:
        self.sim = sim
        self.ws = ws
        assert ws.request is not None
        headers = ws.request.headers
        msgpack = headers.get("Content-Type", "").startswith(wire.MSGPACK_CONTENT_TYPE)
        self.encoding = wire.MSGPACK if msgpack else wire.JSON
        self.session = ServerSession(sim.account, sim.registry, _feed(ws.request.path))
        self._header_credentials = (headers.get(wire.KEY_HEADER), headers.get(wire.SECRET_HEADER))
        self.subscribed = asyncio.Event()
        self.data_frames = 0
        self.quiet_until = 0.0  # time.monotonic() until which no data goes out
        self.stalled_until = 0.0  # ... and the socket is not read
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        if not await self.reply(self.session.open(*self._header_credentials)):
            return
        feeder = asyncio.create_task(self._feed())
        try:
            await self._read()
        finally:
            feeder.cancel()

    async def _read(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.sim.settings.auth_timeout
        while True:
            try:
                async with asyncio.timeout_at(None if self.session.authenticated else deadline):
                    message = await self.ws.recv()
            except TimeoutError:
                await self.reply(self.session.timed_out())
                return
            if not await self.reply(self._answer(message)):
                return
            if any(self.session.channels.values()):
                self.subscribed.set()

    def _answer(self, message: bytes | str) -> Reply:
        try:
            return self.session.receive(message)
        except Exception:  # a simulator bug must look like the real server's error 500
            log().exception("cannot answer a client message")
            return Reply([wire.error(500)])

    async def reply(self, reply: Reply) -> bool:
        """Send each message in a frame of its own; False if the session ends here."""
        for message in reply.messages:
            if isinstance(message, wire.Error):
                self.sim.counters["sim_errors_sent", str(message.code)] += 1
            await self._send(wire.encode_frame([message], self.encoding))
        if reply.close:
            await self.ws.close()
        return not reply.close

    async def _send(self, frame: bytes) -> None:
        await self.ws.send(frame, text=self.encoding == wire.JSON)

    async def _feed(self) -> None:
        await self.subscribed.wait()
        try:
            if self.sim.settings.blast:
                await self._blast()
            elif self.sim.replay:
                await self._replay()
            else:
                await self._live()
        except ConnectionClosed:
            pass  # the reader sees it too and ends the connection

    async def _live(self) -> None:
        loop = asyncio.get_running_loop()
        per_tick, carry, deadline = self.sim.settings.rate * TICK_S, 0.0, loop.time()
        while True:
            carry += per_tick
            count = int(carry)
            carry -= count
            if count:
                await self._send_items(self.sim.market.batch(count, time.time_ns()))
            deadline += TICK_S
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def _replay(self) -> None:
        for frame in self.sim.replay:
            await self._send_items(frame)
            await asyncio.sleep(len(frame) / self.sim.settings.rate)

    async def _blast(self) -> None:
        """Straight to the transport, with the connection's flow control (its pongs and close
        frames still go through websockets, between whole frames of the blast)."""
        for chunk in self.sim.blast_writes(self.encoding):
            if self.ws.transport.is_closing():
                return
            self.ws.transport.write(chunk)
            await self.ws.drain()
        self.sim.counters["sim_frames_sent"] += self.sim.settings.blast
        log().info("blast sent", frames=self.sim.settings.blast)

    async def _send_items(self, items: list[Item]) -> None:
        """Send the subscribed ones in one frame (none while quiet or stalled)."""
        if time.monotonic() >= max(self.quiet_until, self.stalled_until):
            await self._send_data(self._wanted(items))

    def _wanted(self, items: list[Item]) -> list[Any]:
        return [item.payload(self.encoding) for item in items
                if self.session.wants(item.channel, item.symbol)]

    async def _send_data(self, messages: list[Any]) -> None:
        if not messages:
            return
        await self._send(wire.encode_frame(messages, self.encoding))
        self.data_frames += 1
        self.sim.counters["sim_frames_sent"] += 1
        self.sim.counters["sim_messages_sent"] += len(messages)

    # --- test control ----------------------------------------------------------------------

    def subscriptions(self) -> dict[str, list[str]]:
        return {channel: list(symbols) for channel, symbols in self.session.channels.items()
                if symbols}

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` beside the connection (a control's sends), ending quietly if it closes."""
        async def guarded() -> None:
            try:
                await work
            except ConnectionClosed:
                pass

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stall(self, seconds: float) -> None:
        self.stalled_until = time.monotonic() + seconds
        self.ws.transport.pause_reading()
        asyncio.get_running_loop().call_later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        if time.monotonic() >= self.stalled_until and not self.ws.transport.is_closing():
            self.ws.transport.resume_reading()

    async def burst(self, count: int) -> None:
        """At least `count` subscribed messages from the market (if it has such), at once, even
        while quiet (not while stalled)."""
        if time.monotonic() < self.stalled_until:
            return
        wanted: list[Any] = []
        for _ in range(BURST_TRIES):
            wanted += self._wanted(self.sim.market.batch(count, time.time_ns()))
            if len(wanted) >= count:
                break
        for start in range(0, len(wanted), BURST_FRAME_MESSAGES):
            await self._send_data(wanted[start:start + BURST_FRAME_MESSAGES])


async def run_server(settings: SimSettings, counters: Counter,
                     ready: Callable[[], None]) -> None:
    """Serve until cancelled; `ready()` once listening."""
    sim = Simulator(settings, counters)
    async with serve(sim.handle, settings.host, settings.port, compression=None,
                     process_request=sim.process_request, close_timeout=CLOSE_TIMEOUT_S):
        log().info("alpaca simulator listening", host=settings.host, port=settings.port,
                           rate=settings.rate, replay=settings.replay, blast=settings.blast)
        ready()
        await asyncio.Future()


Settings = SimSettings


def main() -> None:
    """Supervised: settings from TICKMESH_CHILD."""
    simulator.run_child(run_server, SimSettings)


def cli(argv: list[str]) -> None:
    """`tickmesh sim alpaca ...`: standalone, no bus."""
    parser = simulator.parser("alpaca", "A local Alpaca market-data stream v2.",
                              rate="messages per second per connection",
                              replay="recorded frames, one JSON frame a line")
    parser.add_argument("--blast", type=int, metavar="N", help="send N pre-built frames, fast")
    simulator.run_cli(parser, argv, SimSettings, run_server)


if __name__ == "__main__":
    main()
