"""Kraken's public WebSocket API v1, client side, sans-I/O: frames in, normalized events,
subscribe frames and resyncs out (see handlers.kraken.wire for the messages).

On every connection `start()` subscribes every pair to `book` (at `depth`), `trade` and
`spread`, one request per channel, and sets a Timer to send Kraken's application `ping`
every `ping_interval` seconds (its `pong` is taken quietly). The first `subscriptionStatus`
"subscribed" is the connection's "subscribed". A pair refused (status "error", e.g. "Currency
pair not supported XYZ/USD") is Change("error", symbol) with Kraken's words, counted in
symbols_refused{provider}: Kraken refuses that pair alone, the others stream on. A
`systemStatus` other than online is an error too (data stop while it lasts); `heartbeat`
publishes nothing.

Data arrays are keyed by channel name and pair (channelID is deprecated and not read). Per
pair:
- book snapshot (`as`/`bs`) -> BookSnapshot of the pair's next generation, `checksum` set to
  CHECKSUM (bus.events.CHECKSUMS): every delta of the generation was verified.
- book update: every level of every payload object applied in order (volume 0 removes; a
  republished level, 4th element "r", is set like any other), the book truncated to `depth`
  (levels pushed out of it go, with no message), then Kraken's checksum of the top 10 levels
  (handlers.kraken.checksum, over the levels' strings as received) compared with `c`.
  Equal -> BookDelta of every level the update touched or the truncation dropped (new
  absolute sizes, 0 removed). Different -> nothing is published: the pair is resyncing at once
  (Change "resyncing", "checksum mismatch"), counted in checksum_mismatches and
  resyncs{checksum}, and Resubscribe(pair): the client's per-symbol capped, jittered backoff
  (handlers.common.effects), then `resubscribe` unsubscribes and subscribes the pair's book
  for a new snapshot. Updates before that snapshot are ignored. So a book on the bus is only
  ever one whose every state the venue's checksum confirmed. (Kraken's checksum covers the top
  10 levels only: a lost update that changed nothing but deeper levels shows once those levels
  reach the top 10, and never if later updates overwrite them first.)
- trade -> Trade per entry (side: the taker's; Kraken v1 trades have no id).
- spread -> Quote (Kraken's L1).
A crossed book, and a book message that cannot be read (a bad price, volume or time, no `c`,
a payload that is not an object), resync the pair as a mismatch does (resyncs{crossed_book},
resyncs{bad_input}); any bad input is counted in bad_input{reason} and described, never
raised. A bad trade or spread is dropped alone. Control "resync" is the default (Resubscribe).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from tickmesh.bus.events import BookDelta, BookSnapshot, Event, Quote, Trade
from tickmesh.handlers.common.protocol import (
    Change, ClientProtocol, Effect, Output, Resubscribe, Timer,
)
from tickmesh.handlers.common.values import quote_problem
from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.checksum import Level, Side, StringBook
from tickmesh.handlers.kraken.wire import Malformed

CHECKSUM = "kraken-crc32"
"""BookSnapshot.checksum of Kraken's books (bus.events.CHECKSUMS)."""
PING_INTERVAL = 30.0
PING = "ping"
MISMATCH = "checksum mismatch"
SIDES = {"a": "asks", "b": "bids"}


@dataclass
class _Pair:
    """What the protocol knows of one pair on this connection."""

    symbol: str
    native: str
    depth: int
    generation: int = 0  # snapshots published, for the life of the protocol (the process)
    syncing: bool = True  # waiting for a snapshot: book updates are ignored until it comes
    resyncing: bool = False  # a resync was asked for (Change "resyncing" already reported)
    refused: bool = False  # Kraken refused it (an error status said so once)
    book: StringBook = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.syncing = True
        self.book = StringBook(self.depth)


class _Out:
    """What one frame produces, collected as it is handled."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.replies: list[str] = []
        self.changes: list[Change] = []
        self.effects: list[Effect] = []
        self.problems: list[str] = []

    def output(self) -> Output:
        problem = "; ".join(self.problems)[:500] if self.problems else ""
        return Output(self.events, self.replies, self.changes, problem, False, self.effects)


class KrakenProtocol(ClientProtocol):
    provider = wire.PROVIDER

    def __init__(self, symbols: list[str], depth: int = 1000,
                 channels: tuple[str, ...] = wire.CHANNELS, counters: Counter | None = None,
                 ping_interval: float = PING_INTERVAL) -> None:
        super().__init__(counters)
        if depth not in wire.DEPTHS:
            raise ValueError(f"depth must be one of {wire.DEPTHS}, not {depth!r}")
        self.depth = depth
        self.channels = channels
        self.ping_interval = ping_interval
        self.pairs = {wire.native_pair(s): _Pair(s, wire.native_pair(s), depth) for s in symbols}
        self.by_symbol = {pair.symbol: pair for pair in self.pairs.values()}
        self.subscribed = False
        self.reqid = 0
        self._book_channel = wire.channel_name(wire.BOOK, depth)

    # --- inputs ----------------------------------------------------------------------------

    def start(self) -> Output:
        self.subscribed = False
        for pair in self.pairs.values():
            pair.reset()
            pair.resyncing = False
        natives = list(self.pairs)
        replies = [wire.request("subscribe", natives, name, self.depth) for name in self.channels]
        effects = [Timer(PING, self.ping_interval)] if self.ping_interval else []
        return Output(replies=replies, changes=[Change("connected")], effects=effects)

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        out = _Out()
        pair = None
        try:
            message = wire.decode(frame)
            if isinstance(message, dict):
                self._on_event(message, out)
            else:
                pair = self._pair(message[-1], out)
                if pair is not None:
                    self._on_data(pair, message, ts_recv, out)
        except Malformed as exc:
            self._bad(out, exc, pair)
        return out.output()

    def timer(self, key: str, ts: int) -> Output:
        """Kraken's application ping, again every ping_interval."""
        if key != PING:
            return Output()
        self.reqid += 1
        return Output(replies=[wire.ping(self.reqid)], effects=[Timer(PING, self.ping_interval)])

    def resubscribe(self, symbol: str) -> Output:
        pair = self.by_symbol.get(symbol)
        if pair is None:
            self.counters["bad_input", "control"] += 1
            return Output(problem=f"cannot resync {symbol[:40]!r}: not one of our pairs")
        changes = [] if pair.resyncing else [Change("resyncing", symbol=symbol, message="asked")]
        pair.reset()
        pair.resyncing = True
        return Output(replies=[wire.request(kind, [pair.native], wire.BOOK, self.depth)
                               for kind in ("unsubscribe", "subscribe")], changes=changes)

    # --- events ----------------------------------------------------------------------------

    def _on_event(self, message: dict[str, Any], out: _Out) -> None:
        kind = message["event"]
        if kind == "subscriptionStatus":
            self._on_status(wire.convert(message, wire.SubscriptionStatus), out)
        elif kind == "systemStatus":
            system: wire.SystemStatus = wire.convert(message, wire.SystemStatus)
            if system.status != wire.ONLINE:
                code = 10 + (wire.SYSTEM_STATES.index(system.status)
                             if system.status in wire.SYSTEM_STATES else 0)
                out.changes.append(Change("error", code,
                                          f"system status {system.status}"[:200]))
        elif kind == "error":
            error: wire.ErrorMessage = wire.convert(message, wire.ErrorMessage)
            out.changes.append(Change("error", self._code(error.errorMessage),
                                      error.errorMessage[:300]))
        # heartbeat, pong and any other event: nothing to publish

    def _on_status(self, status: wire.SubscriptionStatus, out: _Out) -> None:
        pair = self._pair(status.pair, out)
        if pair is None:
            return
        if status.status == wire.SUBSCRIBED:
            if not self.subscribed:
                self.subscribed = True
                out.changes.append(Change("subscribed", message=f"{len(self.pairs)} pairs, "
                                          f"{self._book_channel}"))
            if pair.refused:
                pair.refused = False
                out.changes.append(Change("subscribed", symbol=pair.symbol, message="accepted"))
        elif status.status == wire.ERROR:
            self.counters["symbols_refused", self.provider] += 1
            if not pair.refused:
                pair.refused = True
                out.changes.append(Change("error", self._code(status.errorMessage),
                                          status.errorMessage[:300], pair.symbol))

    @staticmethod
    def _code(message: str) -> int:
        return next((code for text, code in wire.ERROR_CODES.items()
                     if message.startswith(text)), 0)

    # --- data ------------------------------------------------------------------------------

    def _pair(self, native: Any, out: _Out) -> _Pair | None:
        pair = self.pairs.get(native) if isinstance(native, str) else None
        if pair is None:
            self.counters["bad_input", "unknown_pair"] += 1
            out.problems.append(f"a message for a pair not subscribed: {str(native)[:40]!r}")
        return pair

    def _on_data(self, pair: _Pair, message: list[Any], ts_recv: int, out: _Out) -> None:
        name, payloads = message[-2], message[1:-2]
        if name == self._book_channel:
            if any(isinstance(p, dict) and ("as" in p or "bs" in p) for p in payloads):
                self._on_snapshot(pair, payloads, ts_recv, out)
            elif not pair.syncing:
                self._on_update(pair, payloads, ts_recv, out)
        elif name == wire.TRADE and len(payloads) == 1 and isinstance(payloads[0], list):
            for entry in payloads[0]:
                self._on_trade(pair, entry, ts_recv, out)
        elif name == wire.SPREAD and len(payloads) == 1:
            self._on_spread(pair, payloads[0], ts_recv, out)
        else:
            self._count(out, "unknown_channel", f"{pair.native}: data of channel "
                                                f"{str(name)[:40]!r} with {len(payloads)} "
                                                "payloads")

    def _on_snapshot(self, pair: _Pair, payloads: list[Any], ts_recv: int, out: _Out) -> None:
        pair.reset()
        latest = 0
        asks: dict[float, Level | None] = {}  # price -> level as read (None: volume 0)
        bids: dict[float, Level | None] = {}
        for payload in payloads:
            _object(payload)
            latest = max(latest, _apply(asks.__setitem__, payload.get("as", []), {}),
                         _apply(bids.__setitem__, payload.get("bs", []), {}))
        pair.book.asks.replace(asks)
        pair.book.bids.replace(bids)
        pair.book.asks.truncate(self.depth)
        pair.book.bids.truncate(self.depth)
        if pair.book.crossed():
            self._resync(pair, "crossed_book", "a crossed snapshot", out)
            return
        pair.syncing = pair.resyncing = False
        pair.generation += 1
        out.events.append(BookSnapshot(
            provider=self.provider, symbol=pair.symbol, native_symbol=pair.native,
            ts_event=latest or ts_recv, ts_recv=ts_recv, bids=_floats(pair.book.bids),
            asks=_floats(pair.book.asks), generation=pair.generation, checksum=CHECKSUM))

    def _on_update(self, pair: _Pair, payloads: list[Any], ts_recv: int, out: _Out) -> None:
        book = pair.book
        asks: dict[float, float] = {}  # price -> new volume, of each level touched
        bids: dict[float, float] = {}
        latest, expected = 0, None
        for payload in payloads:
            _object(payload)
            if "a" in payload:
                latest = max(latest, _apply(book.asks.set, payload["a"], asks))
            if "b" in payload:
                latest = max(latest, _apply(book.bids.set, payload["b"], bids))
            expected = payload.get("c", expected)
        asks.update(dict.fromkeys(book.asks.truncate(self.depth), 0.0))
        bids.update(dict.fromkeys(book.bids.truncate(self.depth), 0.0))
        if not isinstance(expected, str) or not expected.isdigit():
            raise Malformed("bad_checksum", f"no checksum `c` in a book update: {expected!r}"
                                            [:100])
        if book.checksum() != int(expected):
            self.counters["checksum_mismatches"] += 1
            self._resync(pair, "checksum", MISMATCH, out)
            return
        if book.crossed():
            self._resync(pair, "crossed_book", "an update crossed the book", out)
            return
        out.events.append(BookDelta(
            provider=self.provider, symbol=pair.symbol, native_symbol=pair.native,
            ts_event=latest or ts_recv, ts_recv=ts_recv, bids=list(bids.items()),
            asks=list(asks.items()), generation=pair.generation))

    def _on_trade(self, pair: _Pair, entry: Any, ts_recv: int, out: _Out) -> None:
        try:
            if not isinstance(entry, list) or len(entry) < 4 or entry[3] not in ("b", "s"):
                raise Malformed("malformed_trade", f"not [price, volume, time, b|s, ...]: "
                                                   f"{str(entry)[:80]}")
            price, size, ts_event = wire.price(entry[0]), wire.volume(entry[1]), \
                wire.timestamp(entry[2])
        except Malformed as exc:
            self._count(out, exc.kind, f"{pair.native}: {exc}")
            return
        conditions = [entry[4]] if len(entry) > 4 and entry[4] in ("m", "l") else []
        out.events.append(Trade(
            provider=self.provider, symbol=pair.symbol, native_symbol=pair.native,
            ts_event=ts_event, ts_recv=ts_recv, price=price, size=size, side=entry[3],
            conditions=conditions))

    def _on_spread(self, pair: _Pair, entry: Any, ts_recv: int, out: _Out) -> None:
        try:
            if not isinstance(entry, list) or len(entry) < 5:
                raise Malformed("malformed_spread", f"not [bid, ask, time, bid volume, ask "
                                                    f"volume]: {str(entry)[:80]}")
            bid, ask = wire.number(entry[0], "bad_price"), wire.number(entry[1], "bad_price")
            bid_size, ask_size = wire.volume(entry[3]), wire.volume(entry[4])
            ts_event = wire.timestamp(entry[2])
        except Malformed as exc:
            self._count(out, exc.kind, f"{pair.native}: {exc}")
            return
        problem = quote_problem(bid, bid_size, ask, ask_size)
        if problem:
            self._count(out, problem, f"{pair.native}: spread {entry[:5]}")
            return
        out.events.append(Quote(
            provider=self.provider, symbol=pair.symbol, native_symbol=pair.native,
            ts_event=ts_event, ts_recv=ts_recv, bid_price=bid, bid_size=bid_size,
            ask_price=ask, ask_size=ask_size))

    # --- bad input, resyncs ------------------------------------------------------------------

    def _bad(self, out: _Out, exc: Malformed, pair: _Pair | None) -> None:
        self._count(out, exc.kind, f"{pair.native if pair else 'frame'}: {exc}")
        if pair is not None:  # a book message (a bad snapshot too: it is asked for again)
            self._resync(pair, "bad_input", exc.kind, out)

    def _resync(self, pair: _Pair, reason: str, why: str, out: _Out) -> None:
        """Forget the pair's book and ask for a fresh subscription of it."""
        self.counters["resyncs", reason] += 1
        if not pair.resyncing:
            out.changes.append(Change("resyncing", symbol=pair.symbol, message=why[:200]))
        pair.reset()
        pair.resyncing = True
        out.effects.append(Resubscribe(pair.symbol, why[:200]))

    def _count(self, out: _Out, reason: str, problem: str) -> None:
        self.counters["bad_input", reason] += 1
        out.problems.append(problem[:300])


def _object(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise Malformed("malformed_book", f"a book payload that is not an object: "
                                          f"{str(payload)[:80]}")


def _apply(set_level: Callable[[float, Level | None], None], levels: Any,
           touched: dict[float, float]) -> int:
    """Set each [price, volume, timestamp(, "r")] level with `set_level` (a side's `set`; None:
    volume 0), and its volume in `touched`; the latest of their times (ns). Raises Malformed."""
    if not isinstance(levels, list):
        raise Malformed("malformed_book", f"levels that are not a list: {str(levels)[:80]}")
    latest, stamp = 0, None
    for level in levels:
        if not isinstance(level, list) or not 3 <= len(level) <= 4:
            raise Malformed("malformed_book", f"not a [price, volume, time] level: "
                                              f"{str(level)[:80]}")
        text, size = level[0], level[1]
        price, volume = wire.level(text, size)
        if stamp is None or level[2] != stamp:  # levels changed together share their time
            stamp = level[2]
            latest = max(latest, wire.timestamp(stamp))
        set_level(price, (text, size) if volume else None)
        touched[price] = volume
    return latest


def _floats(side: Side) -> list[tuple[float, float]]:
    levels = side.levels
    return [(price, float(levels[price][1])) for price in side.prices()]
