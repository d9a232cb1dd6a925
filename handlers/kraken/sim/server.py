"""A local simulator of Kraken's public WebSocket API v1 (wss://ws.kraken.com), on ws://.

It answers at any path, and serves the real protocol (handlers/kraken/wire.py): `systemStatus`
on connect; `subscribe` / `unsubscribe` of one channel (book at depth 10, 25, 100, 500 or 1000
(10 if none is given), trade, spread) for a list of pairs, answered by one `subscriptionStatus`
per pair:
"subscribed" / "unsubscribed" with its channel id and name, or "error" for that pair alone (a
pair it does not know: "Currency pair not supported XYZ/USD"; a depth it does not serve;
already subscribed; an unsubscribe of nothing); `ping` answered by `pong` with its reqid; a
request it cannot read by an `error` event. A new book subscription gets the pair's snapshot
at its depth. Data is the pairs' books of handlers/kraken/sim/market.py, stepped every
TICK_SECONDS: each subscriber gets its depth's update (levels as strings, republished ones
marked "r", both sides as two payload objects of one message) with the correct checksum `c`;
trades at `rate` a second per pair; a spread whenever the top changes; a heartbeat to a
connection that got no data for a second. Its pairs are `symbols` (BASE-QUOTE, served under
Kraken's names: BTC-USD is XBT/USD).

With `replay = FILE` (one JSON frame per line as Kraken sent it: data arrays and events),
each connection, once it subscribes, gets the recorded data of the channels and pairs it
subscribed to, in recorded order, as fast as it reads (`speed` > 0: in recorded time, that
many times as fast, paced by the levels' and trades' timestamps); the recorded events are
left out (the simulator answers subscribes itself) and a line that is neither goes out as it
is. The pairs present in the file are served, whether `symbols` lists them or not. The
replay follows each recorded book as a client would, so a pair resubscribed mid-replay gets
a snapshot of the book the recording implies at that point, then the recorded updates after it.

Test control, outside the protocol: HTTP GET /control/<action> on the same port, as
handlers.common.simcontrol documents (stats, drop, stall, quiet, error, burst). Here: quiet
stops the market (books and trades; heartbeats go on); error?code= one of ERRORS (none
closes); burst?count=N makes N trades at once. And (PAIR: BTC-USD or XBT/USD):
    corrupt?pair=PAIR   the next book update of PAIR (to every subscriber, at every depth)
                        carries a checksum that does not match the book: a client must notice
    lose?pair=PAIR&after=N   of PAIR's book updates from now on, the one after N more is sent
                        to nobody, as if lost on the way (it still changes the true book):
                        the next update's checksum shows it. after=0: the next one
    book?pair=PAIR&depth=N   PAIR's true book now, its top N levels a side (strings, as on
                        the wire); in a replay, the book the newest connection's replay
                        implies

Run it standalone (`tickmesh sim kraken --port 8771`, i.e. `cli(argv)`) or supervised
(`python -m tickmesh.handlers.kraken.sim.server`, settings from TICKMESH_CHILD).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection

from tickmesh.handlers.common import simcontrol, simserver, simulator, symbols
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.checksum import StringBook
from tickmesh.handlers.kraken.sim.market import PairBook, View
from tickmesh.handlers.kraken.sim.replay import Frame, ReplayBooks, load, pairs
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.settings import CommaStrings, require

TICK_SECONDS = 0.025
HEARTBEAT_SECONDS = 1.0
MAX_REQUEST_BYTES = 2 ** 20
DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
NAME_INVALID = "Subscription name invalid"
ERRORS = {  # control code: what every connection gets
    "maintenance": wire.system_status(0, "maintenance"),
    "online": wire.system_status(0, wire.ONLINE),
    "malformed": wire.error(wire.MALFORMED_REQUEST),
}


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 8771
    rate: float = 4.0
    """Trades per second per pair (the books change every 25 ms whatever the rate)."""
    symbols: CommaStrings = DEFAULT_SYMBOLS
    replay: str = ""
    speed: float = 0.0
    """Replay: 0 as fast as the client reads; > 0 recorded time, this many times as fast."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list", self.symbols)
        symbols.check_settings(self.symbols)
        require(not self.replay or Path(self.replay).is_file(), "replay", "a file", self.replay)
        require(self.speed >= 0, "speed", "a number >= 0", self.speed)


class _Client(simserver.Client):
    """One connection and what it subscribed to."""

    def __init__(self, ws: ServerConnection, number: int, counters: Counter) -> None:
        super().__init__(ws, number, counters)
        self.channels: dict[str, set[str]] = {}  # channel name -> pairs
        self.replay: asyncio.Task | None = None
        self.books = ReplayBooks()  # what its replay implies so far
        self.last_data = time.monotonic()

    def on(self, channel: str, pair: str) -> bool:
        return pair in self.channels.get(channel, ())

    def subscriptions(self) -> dict[str, list[str]]:
        return {name: sorted(pairs) for name, pairs in self.channels.items() if pairs}

    def data(self, frame: str) -> None:
        self.last_data = time.monotonic()
        self.counters["sim_messages_sent"] += 1
        self.send(frame)

    def slow(self) -> None:
        self.drop()  # Kraken says nothing: the connection just ends


class Simulator(simserver.WebSocketSimulator[_Client]):
    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        super().__init__(settings, counters, wire.PROVIDER, extra={
            "corrupt": simcontrol.Action(self.corrupt, {"pair": self._pair}),
            "lose": simcontrol.Action(self.lose, {"pair": self._pair, "after": _after}),
            "book": simcontrol.Action(self.book, {"pair": self._pair, "depth": _depth})})
        self.settings: SimSettings = settings
        self.frames: list[Frame] = load(settings.replay) if settings.replay else []
        now = time.time_ns()
        self.books = {} if self.frames else {
            wire.native_pair(s): PairBook(s, _rng(settings.seed, s), now)
            for s in settings.symbols}
        self.known = set(self.books) | pairs(self.frames) | {
            wire.native_pair(s) for s in settings.symbols}
        self.views: dict[tuple[str, int], View] = {}
        self.channel_ids: dict[tuple[str, str], int] = {}
        self.corrupted: set[str] = set()
        self.losing: dict[str, int] = {}
        self.quiet_until = 0.0
        self._budget = dict.fromkeys(self.books, 0.0)
        self._rng = _rng(settings.seed, "trades")

    def serve_options(self) -> dict[str, Any]:
        return {"max_size": MAX_REQUEST_BYTES}

    # --- connections -----------------------------------------------------------------------

    def connect(self, ws: ServerConnection, number: int) -> _Client:
        client = _Client(ws, number, self.counters)
        client.send(wire.encode(wire.system_status(number)))
        return client

    def _channel_id(self, name: str, pair: str) -> int:
        return self.channel_ids.setdefault((name, pair), len(self.channel_ids) + 1)

    # --- requests --------------------------------------------------------------------------

    def request(self, client: _Client, data: str | bytes) -> None:
        try:
            request = wire.decode_request(data)
        except wire.Malformed as exc:
            count_bad_input(self.counters, ("bad_input", "bad_request"), self.log,
                            "bad request", client=client.number, error=exc.reason)
            client.send(wire.encode(wire.error(wire.MALFORMED_REQUEST)))
            return
        if request.event == "ping":
            client.send(wire.encode({"event": "pong", **({"reqid": request.reqid}
                                                         if request.reqid is not None else {})}))
        elif request.event in ("subscribe", "unsubscribe"):
            self._subscription(client, request)
        else:
            self.counters["bad_input", "bad_request"] += 1
            client.send(wire.encode(wire.error(wire.UNSUPPORTED_EVENT, request.reqid)))

    def _subscription(self, client: _Client, request: wire.Request) -> None:
        spec = request.subscription
        name = spec.name if spec else ""
        depth = (spec.depth or 10) if spec and name == wire.BOOK else 0
        for pair in dict.fromkeys(request.pair):
            refusal = self._refusal(client, request.event, name, depth, pair)
            if refusal:
                self.counters["sim_errors_sent", refusal.split(" ")[0]] += 1
                client.send(wire.encode(wire.subscription_status(
                    pair[:40], wire.ERROR, name[:40], depth, error=refusal, reqid=request.reqid)))
            elif request.event == "subscribe":
                self._subscribe(client, name, depth, pair, request.reqid)
            else:
                client.channels[wire.channel_name(name, depth)].discard(pair)
                client.send(wire.encode(wire.subscription_status(
                    pair, wire.UNSUBSCRIBED, name, depth, self._channel_id(
                        wire.channel_name(name, depth), pair), reqid=request.reqid)))

    def _refusal(self, client: _Client, event: str, name: str, depth: int, pair: str) -> str:
        """Why Kraken would refuse this pair of the request ("" if it would not)."""
        if name not in wire.CHANNELS:
            return NAME_INVALID
        if name == wire.BOOK and depth not in wire.DEPTHS:
            return wire.DEPTH_NOT_SUPPORTED
        if pair not in self.known:
            return f"{wire.PAIR_NOT_SUPPORTED} {pair[:40]}"
        subscribed = client.on(wire.channel_name(name, depth), pair)
        if event == "subscribe" and subscribed:
            return wire.ALREADY_SUBSCRIBED
        if event == "unsubscribe" and not subscribed:
            return wire.NOT_SUBSCRIBED
        return ""

    def _subscribe(self, client: _Client, name: str, depth: int, pair: str,
                   reqid: int | None) -> None:
        channel = wire.channel_name(name, depth)
        client.channels.setdefault(channel, set()).add(pair)
        channel_id = self._channel_id(channel, pair)
        client.send(wire.encode(wire.subscription_status(pair, wire.SUBSCRIBED, name, depth,
                                                         channel_id, reqid=reqid)))
        if self.frames:
            if client.replay is None:
                client.replay = client.spawn(self._replay(client))
            elif name == wire.BOOK:
                self._replayed_snapshot(client, channel, pair, channel_id)
            return
        if name == wire.BOOK:
            view = self.views.setdefault((pair, depth), View(self.books[pair], depth))
            payload = view.book.snapshot(depth, time.time_ns())
            client.data(wire.encode([channel_id, payload, channel, pair]))

    def _replayed_snapshot(self, client: _Client, channel: str, pair: str, channel_id: int
                           ) -> None:
        """A book resubscribed mid-replay: the book the recording implies here."""
        book = client.books.book(channel, pair)
        if book is None:
            return  # its recorded snapshot is still to come
        stamp = wire.format_time(time.time_ns())
        payload = {"as": [[p, v, stamp] for p, v in book.asks.top()],
                   "bs": [[p, v, stamp] for p, v in book.bids.top()]}
        client.data(wire.encode([channel_id, payload, channel, pair]))

    # --- the market ------------------------------------------------------------------------

    async def run_market(self) -> None:
        """The books, trades and spreads (a replay runs per connection), and heartbeats."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            if self.books and time.monotonic() >= self.quiet_until:
                self._step(time.time_ns())
            now = loop.time()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                self._heartbeats()
            await asyncio.sleep(TICK_SECONDS)

    def _step(self, now_ns: int) -> None:
        elapsed = TICK_SECONDS * self._rng.uniform(0.5, 1.5)
        for pair, book in self.books.items():
            top = (book.top("b", 1), book.top("a", 1))
            changes = book.step(now_ns)
            self._budget[pair] += self.settings.rate * elapsed
            trades = []
            while self._budget[pair] >= 1:
                self._budget[pair] -= 1
                entry, traded = book.trade(now_ns)
                trades.append(entry)
                changes.update(traded)
            self._publish_book(pair, changes, now_ns)
            if trades:
                self._publish(wire.TRADE, pair, trades)
            if top != (book.top("b", 1), book.top("a", 1)):
                self._publish(wire.SPREAD, pair, book.spread(now_ns))

    def _publish_book(self, pair: str, changes: dict, now_ns: int) -> None:
        """Each depth's update of the pair to its subscribers (one lost or corrupted, if
        asked)."""
        views = [view for (p, _), view in self.views.items() if p == pair]
        updates = [(view, view.update(changes, now_ns)) for view in views]
        if not any(payload for _, payload in updates):
            return
        if self._lost(pair):
            return
        wrong = pair in self.corrupted
        self.corrupted.discard(pair)
        checksum = self.books[pair].checksum()
        for view, payload in updates:
            if payload:
                self._publish(wire.channel_name(wire.BOOK, view.depth), pair,
                              *_signed(payload, checksum ^ 1 if wrong else checksum))

    def _lost(self, pair: str) -> bool:
        """This update of the pair is the one `lose` asked for (and is then forgotten)."""
        if pair not in self.losing:
            return False
        if self.losing[pair] > 0:
            self.losing[pair] -= 1
            return False
        del self.losing[pair]
        self.log.info("book update lost on purpose", pair=pair)
        return True

    def _publish(self, channel: str, pair: str, *payloads: Any) -> None:
        frame = wire.encode([self._channel_id(channel, pair), *payloads, channel, pair])
        for client in list(self.clients):
            if client.on(channel, pair) and not client.quiet:
                client.data(frame)

    def _heartbeats(self) -> None:
        idle = time.monotonic() - HEARTBEAT_SECONDS
        beat = wire.encode({"event": "heartbeat"})
        for client in list(self.clients):
            if client.channels and client.last_data <= idle:
                client.send(beat)

    async def _replay(self, client: _Client) -> None:
        """The recorded frames this client subscribed to, as fast as it reads them (or
        paced), each applied to the books its replay implies once it is sent (or skipped)."""
        started = time.monotonic()
        first = next((f.time_ns for f in self.frames if f.time_ns), 0)
        for frame in self.frames:
            if self.settings.speed and frame.time_ns:
                due = started + (frame.time_ns - first) / 1e9 / self.settings.speed
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            line = self._replayed(client, frame)
            if line is not None:
                await client.put(line)
                client.last_data = time.monotonic()
                self.counters["sim_messages_sent"] += 1
            client.books.apply(frame)
        self.log.info("replay finished", client=client.number, frames=len(self.frames))

    def _replayed(self, client: _Client, frame: Frame) -> str | None:
        """What goes out of a recorded frame to this client (None: nothing)."""
        if not frame.channel:
            return frame.line  # garbage, as recorded
        if not client.on(frame.channel, frame.pair):
            return None
        if not frame.channel.startswith(wire.BOOK) or _is_snapshot(frame.message):
            return frame.line
        if self._lost(frame.pair):
            return None
        if frame.pair in self.corrupted:
            self.corrupted.discard(frame.pair)
            return wire.encode(_corrupted(frame.message))
        return frame.line

    # --- test control ----------------------------------------------------------------------

    def _pair(self, text: str) -> str:
        pair = text if "/" in text else _native(text)
        if pair not in self.known:
            raise simcontrol.ControlError(f"unknown pair {text[:40]!r}; known: "
                                          f"{sorted(self.known)}")
        return pair

    def quiet(self, seconds: float) -> dict[str, Any]:
        """The market stands still (books, trades, spreads; heartbeats go on)."""
        self.quiet_until = time.monotonic() + seconds
        return {"connections": len(self.clients)}

    def error(self, code: str) -> dict[str, Any]:
        if code not in ERRORS:
            raise simcontrol.ControlError(f"unknown error {code!r}; known: {sorted(ERRORS)}")
        for client in list(self.clients):
            self.counters["sim_errors_sent", code] += 1
            client.send(wire.encode(ERRORS[code]))
        return {"connections": len(self.clients)}

    def burst(self, count: int) -> dict[str, Any]:
        now = time.time_ns()
        pairs = list(self.books)
        for i in range(count if pairs else 0):
            pair = pairs[i % len(pairs)]
            entry, changes = self.books[pair].trade(now)
            self._publish(wire.TRADE, pair, [entry])
            self._publish_book(pair, changes, now)
        return {"connections": sum(bool(c.channels) for c in self.clients)}

    def corrupt(self, pair: str) -> dict[str, Any]:
        self.corrupted.add(pair)
        return {"connections": len(self.clients), "pair": pair}

    def lose(self, pair: str, after: int) -> dict[str, Any]:
        self.losing[pair] = after
        return {"connections": len(self.clients), "pair": pair}

    def book(self, pair: str, depth: int) -> dict[str, Any]:
        if pair in self.books:
            return {"pair": pair, **self.books[pair].book(depth)}
        replayed = self._replayed_book(pair)
        if replayed is None:
            raise simcontrol.ControlError(f"no book of {pair} replayed yet")
        return {"pair": pair, "asks": [list(level) for level in replayed.asks.top(depth)],
                "bids": [list(level) for level in replayed.bids.top(depth)]}

    def _replayed_book(self, pair: str) -> StringBook | None:
        for client in reversed(list(self.clients)):
            found = [book for (channel, p), book in client.books.books.items() if p == pair]
            if found:
                return max(found, key=lambda book: book.depth)
        return None


def _rng(seed: int, what: str) -> random.Random:
    """Of the random details: repeatable for a seed, new every run without one."""
    return random.Random(f"{seed}|{what}") if seed else random.Random()


def _native(symbol: str) -> str:
    try:
        return wire.native_pair(symbol)
    except ValueError as exc:
        raise simcontrol.ControlError(str(exc)) from None


def _is_snapshot(message: list[Any] | None) -> bool:
    return bool(message) and any(isinstance(p, dict) and ("as" in p or "bs" in p)
                                 for p in message[1:-2])


def _signed(payload: dict[str, list], checksum: int) -> list[dict[str, Any]]:
    """An update's payload objects, one a side, the checksum in the last."""
    objects: list[dict[str, Any]] = [{side: levels} for side, levels in payload.items()]
    objects[-1]["c"] = str(checksum)
    return objects


def _corrupted(message: list[Any]) -> list[Any]:
    """The recorded update with a checksum that cannot match."""
    out = [dict(p) if isinstance(p, dict) else p for p in message]
    for payload in out:
        if isinstance(payload, dict) and isinstance(payload.get("c"), str) \
                and payload["c"].isdigit():
            payload["c"] = str(int(payload["c"]) ^ 1)
    return out


def _after(text: str) -> int:
    if not text.isdigit() or int(text) > simcontrol.MAX_COUNT:
        raise simcontrol.ControlError(f"after must be an integer from 0 to "
                                      f"{simcontrol.MAX_COUNT}, not {text!r}")
    return int(text)


def _depth(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise simcontrol.ControlError(f"depth must be an integer from 1 to 1000, not {text!r}")
    return int(text)


COMMAND = simulator.Command(
    "kraken", Simulator, SimSettings, __doc__.split("\n")[0],
    rate="trades per second per pair",
    replay="recorded frames, one JSON array or event per line",
    flags={"--speed": {"type": float, "help": "replay in recorded time, this many times as "
                       "fast (default: as fast as the client reads)"}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
