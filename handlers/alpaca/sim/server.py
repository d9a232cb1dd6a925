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
A client that lets its outbox fill up (handlers.common.simserver) gets error 407, slow client,
and is closed.

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
from typing import Any, NamedTuple
from http import HTTPStatus

from websockets.asyncio.server import Request, Response, ServerConnection
from websockets.frames import Frame, Opcode

from tickmesh.runtime.logs import log
from tickmesh.runtime.secrets import secret_from_env
from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim import replay
from tickmesh.handlers.alpaca.sim.market import BLAST_SYMBOLS, DEFAULT_SYMBOLS, Item, Market, build_blast_frames
from tickmesh.handlers.alpaca.sim.session import Account, Registry, Reply, ServerSession
from tickmesh.handlers.common import simcontrol, simserver, simulator
from tickmesh.runtime.settings import CommaStrings, require
from tickmesh.handlers.common.simulator import SimulatorSettings

TICK_S = 0.02
SLOW_CLIENT = 407
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


class Blast(NamedTuple):
    """Serialized WebSocket frames, written to the socket as they are."""

    data: bytes
    frames: int


class Connection(simserver.Client):
    """One client: the session's replies, the auth deadline, and the data once subscribed."""

    def __init__(self, sim: Simulator, ws: ServerConnection, number: int) -> None:
        super().__init__(ws, number, sim.counters)
        self.sim = sim
        assert ws.request is not None
        headers = ws.request.headers
        msgpack = headers.get("Content-Type", "").startswith(wire.MSGPACK_CONTENT_TYPE)
        self.encoding = wire.MSGPACK if msgpack else wire.JSON
        self.text = self.encoding == wire.JSON
        self.session = ServerSession(sim.account, sim.registry, _feed(ws.request.path))
        self._header_credentials = (headers.get(wire.KEY_HEADER), headers.get(wire.SECRET_HEADER))
        self.subscribed = asyncio.Event()
        self.data_frames = 0

    async def converse(self) -> None:
        """The session until it ends, then the connection until it is closed."""
        if self.reply(self.session.open(*self._header_credentials)):
            self.spawn(self._feed())
            await self._read()
        await self.ws.wait_closed()

    async def _read(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.sim.settings.auth_timeout
        while True:
            try:
                async with asyncio.timeout_at(None if self.session.authenticated else deadline):
                    message = await self.ws.recv()
            except TimeoutError:
                self.reply(self.session.timed_out())
                return
            if not self.reply(self._answer(message)):
                return
            if any(self.session.channels.values()):
                self.subscribed.set()

    def _answer(self, message: bytes | str) -> Reply:
        try:
            return self.session.receive(message)
        except Exception:  # a simulator bug must look like the real server's error 500
            log().exception("cannot answer a client message")
            return Reply([wire.error(500)])

    def reply(self, reply: Reply) -> bool:
        """Send each message in a frame of its own; False if the session ends here."""
        frames = [wire.encode_frame([message], self.encoding) for message in reply.messages]
        for message in reply.messages:
            if isinstance(message, wire.Error):
                self.counters["sim_errors_sent", str(message.code)] += 1
        if reply.close:
            self.end(simserver.Close(), *frames)
            return False
        for frame in frames:
            self.send(frame)
        return True

    def slow(self) -> None:
        self.reply(self.session.error(SLOW_CLIENT))

    async def write(self, item: bytes | Blast) -> None:
        if not isinstance(item, Blast):
            return await super().write(item)
        self.ws.transport.write(item.data)  # pongs and closes go between whole frames
        await self.ws.drain()
        self.counters["sim_frames_sent"] += item.frames

    async def _feed(self) -> None:
        await self.subscribed.wait()
        if self.sim.settings.blast:
            await self._blast()
        elif self.sim.replay:
            await self._replay()
        else:
            await self._live()

    async def _live(self) -> None:
        loop = asyncio.get_running_loop()
        per_tick, carry, deadline = self.sim.settings.rate * TICK_S, 0.0, loop.time()
        while True:
            carry += per_tick
            count = int(carry)
            carry -= count
            if count:
                self._send_items(self.sim.market.batch(count, time.time_ns()))
            deadline += TICK_S
            await asyncio.sleep(max(0.0, deadline - loop.time()))

    async def _replay(self) -> None:
        for frame in self.sim.replay:
            self._send_items(frame)
            await asyncio.sleep(len(frame) / self.sim.settings.rate)

    async def _blast(self) -> None:
        """As fast as the client reads."""
        for chunk in self.sim.blast_writes(self.encoding):
            await self.put(chunk)
        log().info("blast queued", frames=self.sim.settings.blast)

    def _send_items(self, items: list[Item]) -> None:
        """Send the subscribed ones in one frame (none while quiet)."""
        if not self.quiet:
            self._send_data(self._wanted(items))

    def _wanted(self, items: list[Item]) -> list[Any]:
        return [item.payload(self.encoding) for item in items
                if self.session.wants(item.channel, item.symbol)]

    def _send_data(self, messages: list[Any]) -> None:
        if messages and self.send(wire.encode_frame(messages, self.encoding)):
            self.data_frames += 1
            self.counters["sim_messages_sent"] += len(messages)

    # --- test control ----------------------------------------------------------------------

    def subscriptions(self) -> dict[str, list[str]]:
        return {channel: list(symbols) for channel, symbols in self.session.channels.items()
                if symbols}

    def burst(self, count: int) -> None:
        """At least `count` subscribed messages from the market (if it has such), at once, even
        while quiet."""
        wanted: list[Any] = []
        for _ in range(BURST_TRIES):
            wanted += self._wanted(self.sim.market.batch(count, time.time_ns()))
            if len(wanted) >= count:
                break
        for start in range(0, len(wanted), BURST_FRAME_MESSAGES):
            self._send_data(wanted[start:start + BURST_FRAME_MESSAGES])


class Simulator(simserver.WebSocketSimulator[Connection]):
    """What all connections share: settings, the account, the market, the recorded frames."""

    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        super().__init__(settings, counters, "alpaca")
        self.settings: SimSettings = settings
        self.account = Account(
            key=secret_from_env(settings.key_env) if settings.key_env else "",
            secret=secret_from_env(settings.secret_env) if settings.secret_env else "",
            feeds=settings.feeds, symbol_limit=settings.symbol_limit,
        )
        self.registry = Registry(settings.max_connections)
        self.market = Market(settings.market_symbols, seed=settings.seed or None)
        self.replay = replay.load(settings.replay) if settings.replay else []
        self._blast_writes: dict[str, list[Blast]] = {}

    def serve_options(self) -> dict[str, Any]:
        return {"compression": None}

    def blast_writes(self, encoding: str) -> list[Blast]:
        """The blast as serialized WebSocket frames (server frames are not masked), joined
        BLAST_WRITE_FRAMES to a write; built at its first use in each encoding, then reused."""
        if encoding not in self._blast_writes:
            opcode = Opcode.TEXT if encoding == wire.JSON else Opcode.BINARY
            frames = [Frame(opcode, frame).serialize(mask=False) for frame in build_blast_frames(
                self.settings.blast, self.settings.market_symbols, encoding)]
            chunks = [frames[i:i + BLAST_WRITE_FRAMES]
                      for i in range(0, len(frames), BLAST_WRITE_FRAMES)]
            self._blast_writes[encoding] = [Blast(b"".join(chunk), len(chunk))
                                            for chunk in chunks]
        return self._blast_writes[encoding]

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """A WebSocket upgrade on /v2/{feed}, or 404."""
        if _feed(request.path):
            return None
        return connection.respond(HTTPStatus.NOT_FOUND, "not found: use /v2/{feed}\n")

    def connect(self, ws: ServerConnection, number: int) -> Connection:
        connection = Connection(self, ws, number)
        log().info("client connected", feed=connection.session.feed,
                   encoding=connection.encoding)
        return connection

    async def receive(self, client: Connection) -> None:
        await client.converse()

    def disconnected(self, client: Connection) -> None:
        client.session.close()
        log().info("client gone", frames=client.data_frames)

    # --- test control (handlers.common.simcontrol) -----------------------------------------

    def error(self, code: str) -> dict[str, Any]:
        number = simcontrol.int_code(code, wire.ERRORS)
        for connection in list(self.clients):
            connection.reply(connection.session.error(number))
        return {"connections": len(self.clients)}

    def burst(self, count: int) -> dict[str, Any]:
        subscribed = [c for c in self.clients if c.subscribed.is_set()]
        for connection in subscribed:
            connection.burst(count)
        return {"connections": len(subscribed)}


COMMAND = simulator.Command(
    "alpaca", Simulator, SimSettings, "A local Alpaca market-data stream v2.",
    rate="messages per second per connection",
    replay="recorded frames, one JSON frame a line",
    flags={"--blast": {"type": int, "metavar": "N", "help": "send N pre-built frames, fast"}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
