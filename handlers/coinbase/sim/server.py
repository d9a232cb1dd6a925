"""A local simulator of Coinbase Exchange's WebSocket feed (wss://ws-feed.exchange.coinbase.com),
on ws://, at any path.

It serves the real protocol (handlers/coinbase/wire.py): a client that has not subscribed
within `subscribe_timeout` seconds (5, as Coinbase) is disconnected (close 1008); subscribe
and unsubscribe are answered by `subscriptions`, or, for a request it refuses (unknown
channel or product, no channels, a channel without products, `level2` without the auth
fields), by an error `Failed to subscribe` (or unsubscribe) with the reason, the request
ignored as a whole; a refused product (one not listed: neither in `symbols` nor in the
replayed file; or delisted) is followed, as at Coinbase, by the `subscriptions` as they still
are. A new book subscription gets its product's snapshot, a new matches one its `last_match`.
Data is the products' books of handlers/coinbase/sim/market.py, stepped every TICK_SECONDS:
`level2` subscribers get each step's l2update, `level2_batch` ones the product's changes
every BATCH_SECONDS in one l2update; matches at `rate` a second per product, trade ids +1; a
heartbeat per product every second. A client whose outbox overflows gets ErrSlowConsume and
is disconnected.

With `replay = FILE` (one JSON frame per line, as the exchange sent it), each connection, once
it subscribes, gets the recorded frames of the products and channels it subscribed to, in
recorded order, as fast as it reads (`speed` > 0: in recorded time, that many times as fast,
paced by the frames' `time`); recorded subscriptions and errors are left out (the session
makes its own), and a line that is not a JSON object goes out as it is (garbage on a real
socket, for tests). The file's products are listed as well as `symbols`: a subscribe may name
any of them.

Test control, outside the protocol: HTTP GET /control/<action> on the same port, as
handlers.common.simcontrol documents (stats, drop, stall, quiet, error, burst). Here: quiet
stops the market (books and trades; heartbeats go on); error?code= one of ERRORS;
burst?count=N makes N trades at once. And:
    gap?product=P       a trade of P whose match and book change no connection gets: a lost
                        message (the next match or heartbeat shows the trade id skip)
    book?product=P&depth=N   P's true book now, its top N levels a side (strings, as on the
                        wire)
    delist?product=P    from now on a subscribe or unsubscribe naming P (a listed product) is
                        refused, as for a product the exchange does not list (subscriptions
                        already made are left as they are); relist?product=P undoes it. Both
                        answer the products delisted

Run it standalone (`tickmesh sim coinbase --port 8769`, i.e. `cli(argv)`) or supervised
(`python -m tickmesh.handlers.coinbase.sim.server`, settings from TICKMESH_CHILD).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from tickmesh.handlers.coinbase import wire
from tickmesh.handlers.coinbase.sim.market import Market
from tickmesh.handlers.coinbase.sim.replay import Frame, load, products
from tickmesh.handlers.common import simcontrol, simserver, simulator
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.settings import CommaStrings, require

TICK_SECONDS = 0.025
BATCH_SECONDS = 0.05
HEARTBEAT_SECONDS = 1.0
MAX_REQUEST_BYTES = 2 ** 20
ERRORS = {  # control code: (message, the server disconnects after it)
    "slow_consume": (wire.SLOW_CONSUME, True),
    "slow_read": (wire.SLOW_READ, True),
    "too_big": (wire.TOO_BIG, True),
    "failed_subscribe": (wire.FAILED_SUBSCRIBE, False),
}
CHANNEL_OF = {"snapshot": wire.BOOK_CHANNELS, "l2update": wire.BOOK_CHANNELS,
              "match": (wire.MATCHES,), "last_match": (wire.MATCHES,),
              "heartbeat": (wire.HEARTBEAT,)}
DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD")


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 8769
    rate: float = 4.0
    """Trades per second per product (the books change every 25 ms whatever the rate)."""
    symbols: CommaStrings = DEFAULT_SYMBOLS
    replay: str = ""
    speed: float = 0.0
    """Replay: 0 as fast as the client reads; > 0 recorded time, this many times as fast."""
    subscribe_timeout: float = wire.SUBSCRIBE_DEADLINE

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols) and all("|" not in s for s in self.symbols), "symbols",
                "product ids (without '|')", self.symbols)
        require(not self.replay or Path(self.replay).is_file(), "replay", "a file", self.replay)
        require(self.speed >= 0, "speed", "a number >= 0", self.speed)
        require(self.subscribe_timeout > 0, "subscribe_timeout", "a number > 0",
                self.subscribe_timeout)


class _Client(simserver.Client):
    """One connection and what it subscribed to."""

    def __init__(self, ws: ServerConnection, number: int, counters: Counter) -> None:
        super().__init__(ws, number, counters)
        self.channels: dict[str, set[str]] = {}  # channel -> products
        self.batch: dict[str, list[list[str]]] = {}  # product -> changes
        self.deadline: asyncio.TimerHandle | None = None  # of the first subscribe
        self.replay: asyncio.Task | None = None

    def wants(self, message: dict[str, Any]) -> bool:
        product = message.get("product_id")
        return any(product in self.channels.get(channel, ())
                   for channel in CHANNEL_OF.get(message.get("type"), ()))

    def on(self, channel: str, product: str) -> bool:
        return product in self.channels.get(channel, ())

    def subscriptions(self) -> dict[str, list[str]]:
        return {channel: sorted(products) for channel, products in self.channels.items()
                if products}

    def error(self, message: str, reason: str, close: bool = False) -> None:
        """Coinbase's error; then, if `close`, the disconnect."""
        self.counters["sim_errors_sent", message] += 1
        frame = wire.encode(wire.error(message, reason))
        if close:
            self.channels.clear()
            self.end(simserver.Close(simserver.POLICY_VIOLATION, message), frame)
        else:
            self.send(frame)

    def slow(self) -> None:
        self.error(wire.SLOW_CONSUME, "", close=True)


class Simulator(simserver.WebSocketSimulator[_Client]):
    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        super().__init__(settings, counters, wire.PROVIDER, extra={
            "gap": simcontrol.Action(self.gap, {"product": self._product}),
            "book": simcontrol.Action(self.book, {"product": self._product, "depth": _depth}),
            "delist": simcontrol.Action(self.delist, {"product": self._listed}),
            "relist": simcontrol.Action(self.relist, {"product": self._listed})})
        self.settings: SimSettings = settings
        self.market = Market(list(settings.symbols), settings.rate, time.time_ns(),
                             settings.seed or None)
        self.frames: list[Frame] = load(settings.replay) if settings.replay else []
        self.listed = set(self.market.books) | products(self.frames)
        """What a subscribe may name: `symbols`, and the products of the replayed file."""
        self.quiet_until = 0.0
        self.delisted: set[str] = set()

    def serve_options(self) -> dict[str, Any]:
        return {"max_size": MAX_REQUEST_BYTES}

    # --- connections -----------------------------------------------------------------------

    def connect(self, ws: ServerConnection, number: int) -> _Client:
        client = _Client(ws, number, self.counters)
        client.deadline = client.later(self.settings.subscribe_timeout, self._no_subscribe,
                                       client)
        return client

    def _send(self, client: _Client, message: dict[str, Any]) -> None:
        client.send(wire.encode(message))

    def _no_subscribe(self, client: _Client) -> None:
        self.log.info("no subscribe in time: disconnecting", client=client.number)
        client.end(simserver.Close(simserver.POLICY_VIOLATION, "no subscribe received"))

    # --- requests --------------------------------------------------------------------------

    def request(self, client: _Client, data: str | bytes) -> None:
        try:
            request = wire.decode_request(data)
        except wire.Malformed as exc:
            count_bad_input(self.counters, ("bad_input", "bad_request"), self.log,
                            "bad request", client=client.number, error=exc.reason)
            client.error("Malformed JSON", exc.reason[:200])
            return
        if request.type not in ("subscribe", "unsubscribe"):
            self.counters["bad_input", "bad_request"] += 1
            client.error(f"Failed to {request.type[:40]}",
                         f"{request.type[:40]} is not a valid message type")
            return
        refusal = self._refusal(request)
        if refusal:
            self.counters["bad_input", "bad_request"] += 1
            client.error(f"Failed to {request.type}", refusal)
            if wire.refused_product(refusal):  # then, as Coinbase, the unchanged subscriptions
                self._send(client, wire.subscriptions(client.channels))
        elif request.type == "subscribe":
            self._subscribe(client, request.pairs())
        else:
            self._unsubscribe(client, request.pairs())

    def _refusal(self, request: wire.Request) -> str:
        """Why the request is refused as a whole ("" if it is not)."""
        if not request.channels:
            return "No channels provided"
        for channel in request.channels:
            name = channel if isinstance(channel, str) else channel.name
            if name not in wire.CHANNELS:
                return f"{name[:40]} is not a valid channel"
            if not (request.product_ids or getattr(channel, "product_ids", None)):
                return f"You need to specify at least one product ID for channel {name}"
        for channel, product in request.pairs():
            if product not in self.listed or product in self.delisted:
                return wire.not_listed(product[:40])
            if channel == wire.LEVEL2 and request.type == "subscribe" and not all(
                    (request.key, request.passphrase, request.timestamp, request.signature)):
                return "level2 channel requires authentication"
        return ""

    def _subscribe(self, client: _Client, pairs: list[tuple[str, str]]) -> None:
        client.deadline.cancel()
        new = [(c, p) for c, p in dict.fromkeys(pairs) if not client.on(c, p)]
        for channel, product in new:
            client.channels.setdefault(channel, set()).add(product)
        self._send(client, wire.subscriptions(client.channels))
        if self.frames:
            if client.replay is None:
                client.replay = client.spawn(self._replay(client))
            return
        for channel, product in new:
            self._first_message(client, channel, product)

    def _first_message(self, client: _Client, channel: str, product: str) -> None:
        book = self.market.books[product]
        if channel in wire.BOOK_CHANNELS:
            client.batch.pop(product, None)  # the snapshot has them
            self._send(client, book.snapshot())
        elif channel == wire.MATCHES and book.last_match():
            self._send(client, book.last_match())

    def _unsubscribe(self, client: _Client, pairs: list[tuple[str, str]]) -> None:
        for channel, product in pairs:
            client.channels.get(channel, set()).discard(product)
        for product in {p for _, p in pairs} - client.channels.get(wire.LEVEL2_BATCH, set()):
            client.batch.pop(product, None)
        self._send(client, wire.subscriptions(client.channels))

    # --- the market ------------------------------------------------------------------------

    async def run_market(self) -> None:
        """The books, trades and heartbeats (a replay runs per connection)."""
        if self.frames:
            await asyncio.Future()
        loop = asyncio.get_running_loop()
        next_batch = next_beat = loop.time()
        while True:
            if time.monotonic() >= self.quiet_until:
                self._publish(self.market.advance(time.time_ns()))
            now = loop.time()
            if now >= next_batch:
                next_batch = now + BATCH_SECONDS
                self._flush_batches()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                self._heartbeats()
            await asyncio.sleep(TICK_SECONDS)

    def _publish(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            for client in list(self.clients):
                self._deliver(client, message)

    def _deliver(self, client: _Client, message: dict[str, Any]) -> None:
        product = message["product_id"]
        if message["type"] == "l2update":
            if client.on(wire.LEVEL2_BATCH, product):
                client.batch.setdefault(product, []).extend(message["changes"])
            if not client.on(wire.LEVEL2, product):
                return
        elif not client.wants(message):
            return
        self.counters["sim_messages_sent"] += 1
        self._send(client, message)

    def _flush_batches(self) -> None:
        stamp = wire.format_time(time.time_ns())
        for client in list(self.clients):
            for product, changes in client.batch.items():
                self.counters["sim_messages_sent"] += 1
                self._send(client, {"type": "l2update", "product_id": product,
                                    "changes": changes, "time": stamp})
            client.batch.clear()

    def _heartbeats(self) -> None:
        now = time.time_ns()
        for book in self.market.books.values():
            self._publish([book.heartbeat(now)])

    async def _replay(self, client: _Client) -> None:
        """The recorded frames this client subscribed to, as fast as it reads them (or paced)."""
        started = time.monotonic()
        first = next((f.time_ns for f in self.frames if f.time_ns), 0)
        for frame in self.frames:
            if frame.message is not None and not client.wants(frame.message):
                continue
            if self.settings.speed and frame.time_ns:
                due = started + (frame.time_ns - first) / 1e9 / self.settings.speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await client.put(frame.line)
        self.log.info("replay finished", client=client.number, frames=len(self.frames))

    # --- test control ----------------------------------------------------------------------

    def _product(self, text: str) -> str:
        if text not in self.market.books:
            raise simcontrol.ControlError(f"unknown product {text[:40]!r}; known: "
                                          f"{sorted(self.market.books)}")
        return text

    def _listed(self, text: str) -> str:
        if text not in self.listed:
            raise simcontrol.ControlError(f"unknown product {text[:40]!r}; known: "
                                          f"{sorted(self.listed)}")
        return text

    def quiet(self, seconds: float) -> dict[str, Any]:
        """The market stands still (books and trades; heartbeats go on)."""
        self.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.clients)}

    def error(self, code: str) -> dict[str, Any]:
        if code not in ERRORS:
            raise simcontrol.ControlError(f"unknown error {code!r}; known: {sorted(ERRORS)}")
        message, close = ERRORS[code]
        for client in list(self.clients):
            client.error(message, "simulated", close)
        return {"connections": len(self.clients)}

    def burst(self, count: int) -> dict[str, Any]:
        now = time.time_ns()
        books = list(self.market.books.values())
        for i in range(count):
            self._publish([m for m in books[i % len(books)].trade(now) if m])
        return {"connections": sum(bool(c.channels) for c in self.clients)}

    def gap(self, product: str) -> dict[str, Any]:
        """A trade nobody hears of: its match and its book change are lost."""
        match, _ = self.market.books[product].trade(time.time_ns())
        return {"connections": len(self.clients), "lost_trade_id": match["trade_id"]}

    def book(self, product: str, depth: int) -> dict[str, Any]:
        snapshot = self.market.books[product].snapshot(depth)
        return {"product": product, "bids": snapshot["bids"], "asks": snapshot["asks"]}

    def delist(self, product: str) -> dict[str, Any]:
        self.delisted.add(product)
        return {"delisted": sorted(self.delisted)}

    def relist(self, product: str) -> dict[str, Any]:
        self.delisted.discard(product)
        return {"delisted": sorted(self.delisted)}


def _depth(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise simcontrol.ControlError(f"depth must be an integer from 1 to 1000, not {text!r}")
    return int(text)


COMMAND = simulator.Command(
    "coinbase", Simulator, SimSettings, __doc__.split("\n")[0],
    rate="trades per second per product",
    replay="recorded frames, one JSON object per line",
    flags={"--speed": {"type": float, "help": "replay in recorded time, this many times as "
                       "fast (default: as fast as the client reads)"},
           "--subscribe-timeout": {"type": float}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
