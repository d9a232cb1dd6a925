"""A local simulator of Binance spot market data (wss://stream.binance.com:9443 and the REST
depth endpoint of https://api.binance.com), on ws:// and http:// on ONE port.

WebSocket: `/ws/<stream>` (raw payloads), `/stream?streams=a/b` (combined: {"stream","data"}),
and `/ws` or `/stream` alone, where the client SUBSCRIBEs; SUBSCRIBE / UNSUBSCRIBE /
LIST_SUBSCRIPTIONS answered {"result":...,"id":N}, errors {"code":2|3,"msg":...}; more than
`max_streams` streams on a connection is refused, more than 5 requests in a second closes it
(1008) as Binance does. Pings every `ping_interval` s (20); after `max_age` seconds (24 h) a
connection gets {"e":"serverShutdown","E":ms} and is closed. A client that lets its outbox
fill up (handlers.common.simserver) is disconnected, without a word.

Plain HTTP on the same port: `GET /api/v3/depth?symbol=BTCUSDT&limit=N` (the book as of its
lastUpdateId; 429 with code -1003 and `Retry-After` past `weight_per_minute` of request weight
in a rolling minute; every answer says the weight used in `X-MBX-USED-WEIGHT-1M`), `GET
/api/v3/exchangeInfo` (the symbols), and the test control `/control/<action>`:
stats, drop, stall, quiet, error, burst (handlers.common.simcontrol; here quiet stops the whole
market, so that a book can be compared while it stands still; error C is Binance's error code
0..3, which does not close; burst is trades on the connection's trade streams), and
    gap?symbol=BTCUSDT             the next depthUpdate of BTCUSDT is lost (the book moves on)
    book?symbol=BTCUSDT&depth=N    the true book now: {"lastUpdateId", "bids", "asks"}
    delay?symbol=BTCUSDT&seconds=S REST depth answers for BTCUSDT wait S seconds from now on
    refuse?status=429|418&seconds=S  the next REST depth request, and every one in the S
                                   seconds after it, is answered `status` (429: too much
                                   weight, 418: the IP is banned) with `Retry-After` the
                                   seconds left
    shutdown                       serverShutdown to every connection, then close it
A REST request that comes before a `Retry-After` the simulator gave has passed is counted in
stats' rest.early (Binance bans an IP that keeps doing that).

Data: a market per symbol (handlers.binance.sim.market; symbols normalized, BTC-USDT, served
as BTCUSDT), `rate` book changes per second per symbol, depthUpdates every 100 ms, trades as
they happen, bookTicker when the touch moves. Or, with `replay`, the recorded frames
(handlers.binance.sim.replay) of the streams a connection subscribed to, in recorded order,
as fast as it reads (`speed` > 0: at that multiple of the recorded pace), and with
`snapshots` the recorded REST answers, per symbol in order, the last one again once they run
out. Listed, in exchangeInfo and for REST depth, are `symbols`, the symbols of the replayed
frames' streams and of the recorded answers; while replaying, a listed symbol with no recorded
answer gets an empty book as of just before its first recorded depthUpdate (its recorded
updates build its book), and any other symbol Binance's -1121 "Invalid symbol.".

With `hold_for_snapshots` (--hold-for-snapshots, replaying only) a replay waits for the client's
snapshots, so that the client applies the rest as deltas whenever it fetches them: a replaying
connection is sent the recorded frames in order until each recorded depth stream it subscribed
to (when its replay began: the URL's streams, or its first SUBSCRIBE's) has had its first
depthUpdate sent (a client such as cryptofeed fetches a symbol's snapshot only when that comes),
then nothing more until a REST depth answer has been served for each of those symbols since then
(or HOLD_DEADLINE_S, 30 s: it then goes on, and logs a warning saying so), then the rest at the
configured pace. Stats' `held` names, per held connection, the symbols it still waits for. A
REST answer is tied to no connection: it counts for every held one, so hold for one client at a
time (the book benchmark runs its sides in turn); and the last answer is counted as it is made,
so the first frames after it may reach the client before it does.

Run it standalone (`tickmesh sim binance --port 19443`, i.e. `cli(argv)`) or supervised
(`python -m tickmesh.handlers.binance.sim.server`, settings from TICKMESH_CHILD).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tickmesh.handlers.binance import wire
from tickmesh.handlers.binance.sim import replay
from tickmesh.handlers.binance.sim.market import SymbolMarket
from tickmesh.handlers.common import simcontrol, simserver, simulator, symbols
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.handlers.common.symbols import joined, split_crypto
from tickmesh.runtime.settings import CommaStrings, require

STEP_SECONDS = 0.02
STEPS_PER_FLUSH = 5  # depthUpdates every 100 ms
DEFAULT_SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "ETH-BTC")
HOLD_DEADLINE_S = 30.0
"""How long a replay held for the snapshots waits for them before it goes on."""
REFUSALS = {429: "Too much request weight used; please use WebSocket Streams for live updates "
                 "to avoid polling the API.",
            418: "Way too much request weight used; IP banned until further notice."}
"""What Binance answers (code -1003) with each status that refuses a request for its weight."""


FILTERS = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
     "tickSize": "0.01000000"},
    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
     "stepSize": "0.00001000"},
]
"""A symbol's filters as exchangeInfo lists them (clients such as cryptofeed read the first
one's tickSize)."""
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY",
                "BRL", "JPY", "DAI")
"""Binance's usual quote assets, the longest first: what a replayed symbol that `symbols` does
not name is taken to end with, for exchangeInfo (else its last three letters)."""


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 19443
    rate: float = 50.0
    """Book changes per second per symbol (batched into a depthUpdate every 100 ms)."""
    symbols: CommaStrings = DEFAULT_SYMBOLS
    replay: str = ""
    snapshots: str = ""
    speed: float = 0.0
    hold_for_snapshots: bool = False
    max_age: float = 86_400.0
    ping_interval: float = 20.0
    ping_timeout: float = 60.0
    weight_per_minute: int = wire.WEIGHT_PER_MINUTE
    max_streams: int = wire.MAX_STREAMS

    def __post_init__(self) -> None:
        super().__post_init__()
        symbols.check_settings(self.symbols)
        for key in ("speed", "ping_interval", "ping_timeout"):
            require(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))
        require(self.max_age > 0, "max_age", "a number > 0", self.max_age)
        require(self.weight_per_minute > 0, "weight_per_minute", "an integer > 0",
                self.weight_per_minute)
        require(self.replay or not self.hold_for_snapshots, "hold_for_snapshots",
                "false without replay", self.hold_for_snapshots)
        require(self.max_streams > 0, "max_streams", "an integer > 0", self.max_streams)


class _Client(simserver.Client):
    """One connection: raw or combined streams, and what it subscribed to."""

    def __init__(self, ws: ServerConnection, number: int, counters: Counter,
                 combined: bool) -> None:
        super().__init__(ws, number, counters)
        self.combined = combined
        self.streams: set[str] = set()
        self.requests: deque[float] = deque()  # when its last requests came
        self.replaying = False
        self.hold: replay.Hold | None = None  # its replay's, with hold_for_snapshots

    def frame(self, stream: str, data: dict[str, Any]) -> str:
        return wire.encode({"stream": stream, "data": data} if self.combined else data)

    def subscriptions(self) -> list[str]:
        return sorted(self.streams)


class Simulator(simserver.WebSocketSimulator[_Client]):
    url_path = "/stream"

    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        super().__init__(settings, counters, wire.PROVIDER, extra={
            "gap": simcontrol.Action(self.gap, {"symbol": self._symbol}),
            "book": simcontrol.Action(self.book, {"symbol": self._symbol,
                                                  "depth": simcontrol.count}),
            "delay": simcontrol.Action(self.delay, {"symbol": self._symbol,
                                                    "seconds": simcontrol.seconds}),
            "refuse": simcontrol.Action(self.refuse, {"status": _refusal,
                                                      "seconds": simcontrol.seconds}),
            "shutdown": simcontrol.Action(self.shutdown)})
        self.settings: SimSettings = settings
        rng = random.Random(settings.seed or None)
        now = time.time_ns()
        self.frames = replay.load_frames(settings.replay) if settings.replay else []
        self.snapshots = replay.Snapshots(settings.snapshots or None)
        self.first_ids = replay.first_update_ids(self.frames)
        self.depth_streams = replay.depth_streams(self.frames)
        self.listed = _listed(settings.symbols, [*self.first_ids, *self.snapshots.answers])
        """{native symbol: (base, quote)}: what exchangeInfo lists and REST depth answers."""
        self.markets = {} if self.frames else {
            joined(s): SymbolMarket(s, settings.rate, rng, now) for s in settings.symbols}
        self.quiet_until = 0.0
        self.delays: dict[str, float] = {}
        self.rest_sent: deque[tuple[float, int]] = deque()
        self.rest = Counter()
        self.armed: tuple[int, float] | None = None  # refuse: (status, seconds), not begun
        self.refusing = (0, 0.0)  # (status, until): refusing every REST request till then
        self.retry_until = 0.0  # when the last Retry-After given ends

    def serve_options(self) -> dict[str, Any]:
        return {"ping_interval": self.settings.ping_interval or None,
                "ping_timeout": self.settings.ping_timeout or None}

    # --- connections -----------------------------------------------------------------------

    def connect(self, ws: ServerConnection, number: int) -> _Client:
        path, _, query = ws.request.path.partition("?")
        client = _Client(ws, number, self.counters, combined=path.startswith("/stream"))
        if path.startswith("/ws/"):
            self._add_streams(client, [path.removeprefix("/ws/")])
        for streams in parse_qs(query).get("streams", []):
            self._add_streams(client, streams.split("/"))
        client.later(self.settings.max_age, self._shut, client)
        return client

    def _add_streams(self, client: _Client, streams: list[str]) -> None:
        client.streams.update(s for s in streams if s)
        if self.frames and client.streams and not client.replaying:
            client.replaying = True
            client.hold = self._hold(client.streams)
            client.spawn(self._replay(client))

    def _hold(self, streams: set[str]) -> replay.Hold | None:
        """The hold of a replay of `streams` (None: not held, or no recorded depth in them)."""
        held = {s: native for s, native in self.depth_streams.items() if s in streams}
        return replay.Hold(held) if self.settings.hold_for_snapshots and held else None

    def _shut(self, client: _Client) -> None:
        client.end(simserver.Close(1001, "server shutdown"),
                   wire.encode({"e": wire.SHUTDOWN, "E": time.time_ns() // wire.MS}))

    # --- requests --------------------------------------------------------------------------

    def request(self, client: _Client, data: str | bytes) -> None:
        now = time.monotonic()
        client.requests.append(now)
        while client.requests and client.requests[0] < now - 1:
            client.requests.popleft()
        if len(client.requests) > wire.MAX_MESSAGES_PER_SECOND:
            self.counters["bad_input", "bad_request"] += 1
            self.log.warning("too many requests: closing", client=client.number)
            client.end(simserver.Close(simserver.POLICY_VIOLATION, "Too many requests"))
            return
        try:
            request = wire.decode_request(data)
        except wire.Malformed as exc:
            self._refuse(client, 3 if exc.kind == "frame" else 2, exc.reason, None)
            return
        if request.method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._subscribe(client, request)
        elif request.method == "LIST_SUBSCRIPTIONS":
            client.send(wire.encode({"result": sorted(client.streams), "id": request.id}))
        else:
            self._refuse(client, 2, f"Invalid request: unknown method {request.method[:40]!r}",
                         request.id)

    def _subscribe(self, client: _Client, request: wire.Request) -> None:
        for stream in request.params:
            try:
                wire.split_stream(stream)
            except wire.Malformed:
                self._refuse(client, 2, f"Invalid request: bad stream {stream[:60]!r}",
                             request.id)
                return
        if request.method == "UNSUBSCRIBE":
            client.streams.difference_update(request.params)
        elif len(client.streams | set(request.params)) > self.settings.max_streams:
            self._refuse(client, 2, f"Invalid request: over {self.settings.max_streams} "
                                    "streams", request.id)
            return
        else:
            self._add_streams(client, request.params)
        client.send(wire.encode({"result": None, "id": request.id}))

    def _refuse(self, client: _Client, code: int, message: str, request_id: Any) -> None:
        self.counters["bad_input", "bad_request"] += 1
        self.counters["sim_errors_sent", str(code)] += 1
        client.send(wire.encode({"code": code, "msg": message[:200], "id": request_id}))

    # --- data ------------------------------------------------------------------------------

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        for client in list(self.clients):
            if stream in client.streams and client.send(client.frame(stream, data)):
                self.counters["sim_messages_sent"] += 1

    async def run_market(self) -> None:
        steps = 0
        while True:
            now = time.time_ns()
            if time.monotonic() >= self.quiet_until:
                for market in self.markets.values():
                    for trade in market.step(now):
                        self._publish(wire.stream_name(market.native, "trade"), trade)
            steps += 1
            if steps % STEPS_PER_FLUSH == 0:
                for market in self.markets.values():
                    self._flush(market, now // wire.MS)
            await asyncio.sleep(STEP_SECONDS)

    def _flush(self, market: SymbolMarket, now_ms: int) -> None:
        depth, ticker = market.flush(now_ms)
        if depth is not None:
            self._publish(wire.stream_name(market.native, "depth"), depth)
        if ticker is not None:
            self._publish(wire.stream_name(market.native, "bookTicker"), ticker)

    async def _replay(self, client: _Client) -> None:
        last_ms = 0
        for frame in self.frames:
            if frame.stream and frame.stream not in client.streams:
                continue
            if client.hold and client.hold.due:
                await self._wait_for_snapshots(client, client.hold)
            if self.settings.speed and frame.event_ms and last_ms:
                pause = max(0, frame.event_ms - last_ms) / 1000
                await asyncio.sleep(pause / self.settings.speed)
            last_ms = frame.event_ms or last_ms
            await client.put(frame.line if client.combined or not frame.stream else frame.raw)
            self.counters["sim_messages_sent"] += 1
            if client.hold:
                client.hold.sent(frame.stream)
        self.log.info("replay finished", client=client.number)

    async def _wait_for_snapshots(self, client: _Client, hold: replay.Hold) -> None:
        self.log.info("replay held for the snapshots", client=client.number,
                      symbols=len(hold.unserved))
        if await hold.wait(HOLD_DEADLINE_S):
            self.log.info("replay goes on: every snapshot served", client=client.number)
        else:
            self.log.warning("replay goes on without every snapshot: the hold's deadline "
                             "passed", client=client.number, seconds=HOLD_DEADLINE_S,
                             missing=sorted(hold.unserved))

    # --- HTTP ------------------------------------------------------------------------------

    async def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """The streams, REST, or 404."""
        parts = urlsplit(request.path)
        if parts.path in ("/ws", "/stream") or parts.path.startswith("/ws/"):
            return None
        if parts.path == "/api/v3/depth":
            return await self._depth(connection, parse_qs(parts.query))
        if parts.path == "/api/v3/exchangeInfo":
            return self._rest(connection, 200, self._exchange_info())
        return _json(connection, 404, {"code": -1, "msg": f"no such path {parts.path[:60]}"})

    async def _depth(self, connection: ServerConnection,
                     query: dict[str, list[str]]) -> Response:
        symbol = query.get("symbol", [""])[0].upper()
        limit_text = query.get("limit", ["100"])[0]
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= wire.MAX_DEPTH_LIMIT:
            return _json(connection, 400, {"code": -1100, "msg": "Illegal characters found in "
                                           f"parameter 'limit': {limit_text[:20]}"})
        limit = int(limit_text)
        now = time.monotonic()
        if now < self.retry_until:
            self.rest["early"] += 1
        refusal = self._refusal(now) or self._spend(wire.depth_weight(limit), now)
        if refusal:
            return self._refuse_rest(connection, *refusal, now)
        self.rest["requests"] += 1
        if symbol in self.delays:
            await asyncio.sleep(self.delays[symbol])
        answer = self._snapshot(symbol, limit)
        if answer is None:
            return self._rest(connection, 400, {"code": -1121, "msg": "Invalid symbol."})
        for client in self.clients:
            if client.hold:
                client.hold.served(symbol)
        return self._rest(connection, 200, answer)

    def _snapshot(self, symbol: str, limit: int) -> dict[str, Any] | None:
        """A depth answer: recorded, the market's, or (replaying) an empty book before the
        recorded updates; None for a symbol not listed."""
        if symbol in self.snapshots:
            return self.snapshots.next(symbol)
        if symbol in self.markets:
            return self.markets[symbol].snapshot(limit)
        if symbol in self.listed:  # no market: replaying
            return replay.unrecorded_snapshot(self.first_ids.get(symbol, 0))
        return None

    def _refusal(self, now: float) -> tuple[int, float] | None:
        """(status, until) while a `refuse` control is in force (the armed one begins now)."""
        if self.armed is not None:
            status, seconds = self.armed
            self.refusing, self.armed = (status, now + seconds), None
        status, until = self.refusing
        return (status, until) if now < until else None

    def _spend(self, weight: int, now: float) -> tuple[int, float] | None:
        """Count the request's weight; (429, when it would fit) if it does not."""
        self._forget(now)
        over = self._weight_used() + weight - self.settings.weight_per_minute
        if over <= 0:
            self.rest_sent.append((now, weight))
            return None
        for sent, spent in self.rest_sent:
            over -= spent
            if over <= 0:
                return 429, sent + 60
        return 429, now + 60  # heavier than the whole budget

    def _refuse_rest(self, connection: ServerConnection, status: int, until: float,
                     now: float) -> Response:
        retry_after = max(1, math.ceil(until - now))
        self.retry_until = max(self.retry_until, now + retry_after)
        self.rest["refused"] += 1
        return self._rest(connection, status, {"code": -1003, "msg": REFUSALS[status]},
                          {"Retry-After": str(retry_after)})

    def _rest(self, connection: ServerConnection, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> Response:
        """A REST answer, with the weight used in the last minute as Binance says it."""
        self._forget(time.monotonic())
        response = _json(connection, status, body)
        for name, value in {"X-MBX-USED-WEIGHT-1M": str(self._weight_used()),
                            **(headers or {})}.items():
            response.headers[name] = value
        return response

    def _forget(self, now: float) -> None:
        while self.rest_sent and self.rest_sent[0][0] <= now - 60:
            self.rest_sent.popleft()

    def _weight_used(self) -> int:
        return sum(weight for _, weight in self.rest_sent)

    def _exchange_info(self) -> dict[str, Any]:
        return {"timezone": "UTC", "serverTime": time.time_ns() // wire.MS,
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": self.settings.weight_per_minute}],
                "exchangeFilters": [],
                "symbols": [{"symbol": base + quote, "status": "TRADING", "baseAsset": base,
                             "quoteAsset": quote, "isSpotTradingAllowed": True,
                             "permissions": ["SPOT"], "filters": FILTERS}
                            for base, quote in self.listed.values()]}

    # --- test control ----------------------------------------------------------------------

    def _symbol(self, text: str) -> str:
        symbol = text.upper()
        if symbol not in self.listed:
            known = sorted(self.listed)
            raise simcontrol.ControlError(f"unknown symbol {text[:40]!r}; known: {known}")
        return symbol

    def _market(self, symbol: str) -> SymbolMarket:
        if symbol not in self.markets:
            raise simcontrol.ControlError("no market while replaying")
        return self.markets[symbol]

    def gap(self, symbol: str) -> dict[str, Any]:
        self._market(symbol).gap()
        return {"symbol": symbol}

    def book(self, symbol: str, depth: int) -> dict[str, Any]:
        return {"symbol": symbol, **self._market(symbol).snapshot(depth)}

    def delay(self, symbol: str, seconds: float) -> dict[str, Any]:
        self.delays[symbol] = seconds
        return {"symbol": symbol}

    def refuse(self, status: int, seconds: float) -> dict[str, Any]:
        self.armed = (status, seconds)
        return {"status": status}

    def shutdown(self) -> dict[str, Any]:
        for client in list(self.clients):
            self._shut(client)
        return {"connections": len(self.clients)}

    def quiet(self, seconds: float) -> dict[str, Any]:
        """The whole market stands still."""
        self.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.clients)}

    def error(self, code: str) -> dict[str, Any]:
        number = simcontrol.int_code(code, wire.ERROR_CODES)
        for client in self.clients:
            self.counters["sim_errors_sent", str(number)] += 1
            client.send(wire.encode({"code": number, "msg": wire.ERROR_CODES[number],
                                     "id": None}))
        return {"connections": len(self.clients)}

    def burst(self, count: int) -> dict[str, Any]:
        """`count` trades to each connection with trade streams of our markets."""
        now_ms = time.time_ns() // wire.MS
        reached = 0
        for client in self.clients:
            streams = [(s, m) for m in self.markets.values()
                       if (s := wire.stream_name(m.native, "trade")) in client.streams]
            if not streams:
                continue
            reached += 1
            for i in range(count):
                stream, market = streams[i % len(streams)]
                client.send(client.frame(stream, market.burst_trade(now_ms)))
        return {"connections": reached}

    def stats(self) -> dict[str, Any]:
        return {**super().stats(),
                "rest": {"requests": 0, "refused": 0, "early": 0, **self.rest,
                         "weight_1m": self._weight_used()},
                "held": {str(c.number): sorted(c.hold.unserved) for c in self.clients
                         if c.hold and c.hold.holding},
                "update_ids": {s: m.last_id for s, m in self.markets.items()}}


def _refusal(text: str) -> int:
    """The status of a `refuse` control: 429 or 418."""
    if text not in ("429", "418"):
        raise simcontrol.ControlError(f"status must be 429 or 418, not {text[:20]!r}")
    return int(text)


def _listed(symbols: tuple[str, ...], natives: list[str]) -> dict[str, tuple[str, str]]:
    """{native: (base, quote)} of the settings' `symbols` (BTC-USDT), then of `natives`
    (BTCUSDT) that they do not name."""
    listed = {joined(s): split_crypto(s) for s in symbols}
    for native in natives:
        listed.setdefault(native, _assets(native))
    return listed


def _assets(native: str) -> tuple[str, str]:
    """(base, quote) of a native symbol such as BANDBTC: a QUOTE_ASSETS suffix, else its
    last three letters (none of a symbol that short)."""
    quote = next((q for q in QUOTE_ASSETS if native.endswith(q) and len(native) > len(q)),
                 native[-3:] if len(native) > 3 else "")
    return native[:len(native) - len(quote)], quote


def _json(connection: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    return simcontrol.respond(connection, simcontrol.Answer(status, body))


COMMAND = simulator.Command(
    "binance", Simulator, SimSettings, __doc__.split("\n")[0],
    rate="book changes per second per symbol",
    replay="recorded combined-stream frames, one per line",
    flags={"--snapshots": {"metavar": "FILE", "help": "recorded REST depth answers, one "
                           '{"symbol","response"} per line'},
           "--speed": {"type": float,
                       "help": "replay at this multiple of the recorded pace (0: as fast as read)"},
           "--hold-for-snapshots": {
               "action": "store_true", "default": None,
               "help": "replay each symbol's first depthUpdate, then wait (30 s at most) "
                       "until each one's REST depth has been served (for one client at a "
                       "time)"},
           "--max-age": {"type": float, "help": "seconds before serverShutdown"}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
