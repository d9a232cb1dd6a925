"""The Coinbase Exchange WebSocket feed, client side, sans-I/O: frames in, normalized events,
subscribe frames and resyncs out (see handlers.coinbase.wire for the messages).

On every connection `start()` sends the subscribe at once (the server disconnects a client
that has not subscribed within 5 s): every product on the book channel (`level2_batch`, no
auth; or `level2`, signed), `matches` and `heartbeat`. The first `subscriptions` reply that
lists one of our products is "subscribed". Per product:
- `snapshot` -> BookSnapshot (the product's next generation), `l2update` -> BookDelta of the
  changed levels (absolute sizes, 0 removes). The protocol keeps each product's book, to
  validate what arrives, and ignores its level-2 data from a resync until the new snapshot.
- `match` -> Trade, `trade_id` as its id, side the aggressor's: the opposite of the maker's
  `side` on the wire. `last_match` is NOT published: it is a trade from before the
  subscription, which consumers may already have seen (it comes again on every reconnect and
  resync); it only sets where the product's trade ids stand.
- `heartbeat` publishes nothing; it checks the trade ids (below).

What the feed lets us detect, and how (per product):
- A lost match: trade ids go +1 per trade of the product, so a match whose trade_id skips
  ahead of the last one seen, or a heartbeat whose last_trade_id is ahead of it, means
  trades were lost (counted in trades_missed). A match at or below the last id seen is a
  duplicate or out of order: counted (bad_input "stale_trade") and not published.
  A heartbeat's last_trade_id of 0 is unknown (some deployments always send 0).
- `sequence` does NOT show losses on these channels: it counts all of the product's messages
  (the full channel's too), so it skips on matches and heartbeats by design. A sequence that
  goes backwards is out of order (counted, bad_input "stale_sequence").
- Level-2 messages have no sequence: a lost l2update shows only if it leaves the book
  crossed (best bid >= best ask), which is checked after every snapshot and update.
A loss (a trade-id gap), a crossed book, or bad input about a product (a price or size that
does not parse, is NaN, negative; a malformed snapshot or update; a trade-id jump over
MAX_GAP; a frame nested too deep or not JSON at all that names the product) resyncs that
product: Change("resyncing", symbol) and Resubscribe(product), whose per-symbol capped,
jittered backoff (handlers.common.effects) paces a resync that keeps failing;
`resubscribe(product)` then gives the frames that unsubscribe and subscribe that product
again, for a fresh snapshot and last_match. Every other product keeps flowing. Bad input is
counted in bad_input{reason}, resyncs in resyncs{reason}. Lost trades are counted, not
recovered (Coinbase's REST trades endpoint could fill them in; not done here).

A product the exchange refuses ("Failed to subscribe": "P is not a valid product": unknown
or delisted) would stop the whole feed, as Coinbase ignores the whole request that names it.
So the protocol marks P refused, says Change("error", symbol P) with the exchange's words
(once, until P is accepted), counts symbols_refused{provider}, and subscribes at once, on the
same connection, what that request should have brought: every product not refused that the
latest `subscriptions` does not list. P is then retried alone, on a Timer: `refused_retry`
seconds after its first refusal, twice as long after each one that follows, at most
`refused_retry_max`; the due time outlives reconnects, whose subscribes leave P out (unless
every product is refused: then each connection asks for them all). When a `subscriptions`
lists P, P is Change("subscribed", symbol P) and streams again from its snapshot. A resync
asked for a refused product waits for its retry. A refusal that names no product of ours
("Invalid product ID provided", Coinbase's older words) is only an error, as below.

Other `error` messages -> Change("error") with the message and reason (for the product the
reason names, if one of ours); after those the server disconnects on (ErrSlowConsume,
ErrSlowRead, Message too big) the protocol closes too. Messages of unknown types are ignored,
as the documentation asks. Control "resync" for a product is the default (a Resubscribe).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from tickmesh.bus.events import BookDelta, BookSnapshot, Event, Trade
from tickmesh.handlers.coinbase import wire
from tickmesh.handlers.coinbase.wire import Malformed
from tickmesh.handlers.common.book import Book
from tickmesh.handlers.common.protocol import (
    Change, ClientProtocol, Effect, Output, Resubscribe, Timer,
)

MAX_GAP = 1_000_000
"""A jump in trade ids bigger than this is counted as a broken id, not as lost trades."""
AGGRESSOR = {"sell": "b", "buy": "s"}
"""The taker's side ("b"/"s") from the maker's side on the wire."""
RETRY_REFUSED = 300.0
"""Seconds from a product's first refusal to its first retry (doubling after each refusal)."""
RETRY_REFUSED_MAX = 3600.0
"""The longest wait between two retries of a refused product."""
RETRY_KEY = "retry-refused:"
"""The Timer key of a refused product's retry, before its symbol."""


@dataclass
class Credentials:
    """For a `level2` subscribe, which Coinbase wants signed."""

    key: str
    secret: str
    passphrase: str


@dataclass
class _Product:
    """What the protocol knows of one product on this connection."""

    symbol: str
    generation: int = 0  # snapshots published, for the life of the protocol (the process)
    syncing: bool = True  # waiting for a snapshot: level-2 data is ignored until it comes
    resyncing: bool = False  # a resync was asked for (Change "resyncing" already reported)
    book: Book = field(default_factory=Book)
    last_trade_id: int = 0  # 0: none seen yet
    last_sequence: int = 0
    refused: bool = False  # the exchange refused it: left out of subscribes, retried alone
    retry_delay: float = 0.0  # the wait before its latest retry (0: not refused)
    retry_at: float = 0.0  # clock() when it is retried next

    def reset(self) -> None:
        self.syncing = True
        self.book = Book()
        self.last_trade_id = self.last_sequence = 0


class _Out:
    """What one frame produces, collected as it is handled."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.replies: list[str] = []
        self.changes: list[Change] = []
        self.effects: list[Effect] = []
        self.problems: list[str] = []
        self.close = False

    def output(self) -> Output:
        return Output(self.events, self.replies, self.changes,
                      "; ".join(self.problems)[:500], self.close, self.effects)


class CoinbaseProtocol(ClientProtocol):
    provider = wire.PROVIDER

    def __init__(self, products: list[str], channel: str = wire.LEVEL2_BATCH,
                 credentials: Credentials | None = None, counters: Counter | None = None,
                 clock: Callable[[], float] = time.time, refused_retry: float = RETRY_REFUSED,
                 refused_retry_max: float = RETRY_REFUSED_MAX) -> None:
        super().__init__(counters)
        if channel not in wire.BOOK_CHANNELS:
            raise ValueError(f"channel must be one of {wire.BOOK_CHANNELS}, not {channel!r}")
        self.channel = channel
        self.credentials = credentials
        self.clock = clock
        self.refused_retry = refused_retry
        self.refused_retry_max = refused_retry_max
        self.products = {symbol: _Product(symbol) for symbol in products}
        self.subscribed = False
        self.listed: set[str] = set()  # our products the latest `subscriptions` lists

    @property
    def channels(self) -> list[str]:
        return [self.channel, wire.MATCHES, wire.HEARTBEAT]

    # --- inputs ----------------------------------------------------------------------------

    def start(self) -> Output:
        self.subscribed = False
        self.listed = set()
        for product in self.products.values():
            product.reset()
            product.resyncing = False
        wanted = [symbol for symbol, product in self.products.items() if not product.refused]
        retries = self._retries() if wanted else []  # none wanted: ask for them all
        return Output(replies=[self._request("subscribe", wanted or list(self.products))],
                      changes=[Change("connected")], effects=retries)

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        out = _Out()
        try:
            message = wire.decode_message(frame)
        except Malformed as exc:
            self._bad(out, exc, self._symbol_of(None, frame))
            return out.output()
        try:
            self._dispatch(message, ts_recv, out)
        except Malformed as exc:
            self._bad(out, exc, self._symbol_of(message, frame))
        return out.output()

    def timer(self, key: str, ts: int) -> Output:
        """A refused product's retry came due: subscribe it alone."""
        product = self.products.get(key.removeprefix(RETRY_KEY))
        if not key.startswith(RETRY_KEY) or product is None or not product.refused:
            return Output()  # e.g. accepted since the timer was set
        return Output(replies=[self._request("subscribe", [product.symbol])])

    def resubscribe(self, symbol: str) -> Output:
        product = self.products.get(symbol)
        if product is None:
            self.counters["bad_input", "control"] += 1
            return Output(problem=f"cannot resync {symbol[:40]!r}: not one of our products")
        if product.refused:
            return Output()  # it waits for its retry
        changes = [] if product.resyncing else [Change("resyncing", symbol=symbol,
                                                        message="asked")]
        product.reset()
        product.resyncing = True
        return Output(replies=[self._request("unsubscribe", [symbol]),
                               self._request("subscribe", [symbol])], changes=changes)

    # --- messages --------------------------------------------------------------------------

    def _dispatch(self, message: dict[str, Any], ts_recv: int, out: _Out) -> None:
        kind = message["type"]
        if kind == "subscriptions":
            self._on_subscriptions(message, out)
        elif kind == "error":
            self._on_error(wire.convert(message, wire.Error), out)
        elif kind in ("snapshot", "l2update", "match", "last_match", "heartbeat"):
            product = self._product(message, out)
            if product is not None:
                HANDLERS[kind](self, product, message, ts_recv, out)
        # any other type: ignored, as Coinbase asks of clients

    def _product(self, message: dict[str, Any], out: _Out) -> _Product | None:
        symbol = message.get("product_id")
        product = self.products.get(symbol) if isinstance(symbol, str) else None
        if product is None:
            self.counters["bad_input", "unknown_product"] += 1
            out.problems.append(f"{message['type']} for a product not subscribed: "
                                f"{str(symbol)[:40]!r}")
        return product

    def _on_subscriptions(self, message: dict[str, Any], out: _Out) -> None:
        reply: wire.Subscriptions = wire.convert(message, wire.Subscriptions)
        listed = {symbol for channel in reply.channels for symbol in channel.product_ids}
        self.listed = listed & self.products.keys()
        if self.listed and not self.subscribed:
            self.subscribed = True
            names = ",".join(channel.name for channel in reply.channels)
            out.changes.append(Change("subscribed", message=f"{len(self.listed)} of "
                                      f"{len(self.products)} products on {names}"[:200]))
        for symbol in sorted(self.listed):
            self._accepted(self.products[symbol], out)

    def _accepted(self, product: _Product, out: _Out) -> None:
        """The exchange lists a product: if it was refused, it is no longer."""
        if product.refused:
            product.refused = False
            product.retry_delay = product.retry_at = 0.0
            out.changes.append(Change("subscribed", symbol=product.symbol,
                                      message="listed again"))

    def _on_error(self, error: wire.Error, out: _Out) -> None:
        refused = self.products.get(wire.refused_product(error.reason))
        if error.message == wire.FAILED_SUBSCRIBE and refused is not None:
            self._refused(refused, error, out)
            return
        symbol = next((s for s in self.products if error.reason.startswith(s + " ")), "")
        text = f"{error.message}: {error.reason}" if error.reason else error.message
        out.changes.append(Change("error", wire.ERROR_CODES.get(error.message, 0), text[:300],
                                  symbol))
        out.close |= error.message in wire.CLOSING_ERRORS

    def _on_snapshot(self, product: _Product, message: dict[str, Any], ts_recv: int,
                     out: _Out) -> None:
        snapshot: wire.Snapshot = wire.convert(message, wire.Snapshot)
        product.book = Book(_levels(snapshot.bids), _levels(snapshot.asks))
        if product.book.crossed():
            self._resync(product, "crossed_book", "a crossed snapshot", out)
            return
        product.syncing = product.resyncing = False
        product.generation += 1
        ts_event = wire.parse_time(snapshot.time) if snapshot.time else ts_recv
        out.events.append(BookSnapshot(
            provider=self.provider, symbol=product.symbol, ts_event=ts_event, ts_recv=ts_recv,
            bids=product.book.sorted_bids(), asks=product.book.sorted_asks(),
            generation=product.generation))

    def _on_l2update(self, product: _Product, message: dict[str, Any], ts_recv: int,
                     out: _Out) -> None:
        if product.syncing:
            return  # before the (new) snapshot: nothing to apply it to
        update: wire.L2Update = wire.convert(message, wire.L2Update)
        ts_event = wire.parse_time(update.time)
        changed: dict[str, dict[float, float]] = {"buy": {}, "sell": {}}
        for side, price, size in update.changes:
            p, s = wire.level(price, size)
            changed[side][p] = s
        product.book.apply(changed["buy"].items(), changed["sell"].items())
        if product.book.crossed():
            self._resync(product, "crossed_book", "an update crossed the book", out)
            return
        out.events.append(BookDelta(
            provider=self.provider, symbol=product.symbol, ts_event=ts_event, ts_recv=ts_recv,
            bids=list(changed["buy"].items()), asks=list(changed["sell"].items()),
            generation=product.generation))

    def _on_match(self, product: _Product, message: dict[str, Any], ts_recv: int,
                  out: _Out) -> None:
        match: wire.Match = wire.convert(message, wire.Match)
        price, size = wire.level(match.price, match.size)
        ts_event = wire.parse_time(match.time)
        if message["type"] == "last_match":
            product.last_trade_id, product.last_sequence = match.trade_id, match.sequence
            return
        if not self._in_order(product, match.trade_id, match.sequence, out):
            return
        out.events.append(Trade(
            provider=self.provider, symbol=product.symbol, ts_event=ts_event, ts_recv=ts_recv,
            price=price, size=size, trade_id=str(match.trade_id), side=AGGRESSOR[match.side]))

    def _on_heartbeat(self, product: _Product, message: dict[str, Any], ts_recv: int,
                      out: _Out) -> None:
        beat: wire.Heartbeat = wire.convert(message, wire.Heartbeat)
        if beat.sequence < product.last_sequence:
            self._count(out, "stale_sequence", f"{product.symbol}: heartbeat sequence "
                                               f"{beat.sequence} < {product.last_sequence}")
            return
        product.last_sequence = beat.sequence
        seen = product.last_trade_id
        if seen and beat.last_trade_id > seen:
            self._missed(product, beat.last_trade_id - seen, "heartbeat", out)

    def _in_order(self, product: _Product, trade_id: int, sequence: int, out: _Out) -> bool:
        """Track the trade ids; False for a match to drop (a duplicate or out of order)."""
        seen = product.last_trade_id
        if seen and trade_id <= seen:
            self._count(out, "stale_trade", f"{product.symbol}: trade {trade_id} after {seen}")
            return False
        if sequence < product.last_sequence:
            self._count(out, "stale_sequence", f"{product.symbol}: match sequence "
                                               f"{sequence} < {product.last_sequence}")
        product.last_trade_id, product.last_sequence = trade_id, max(sequence,
                                                                     product.last_sequence)
        if seen and trade_id > seen + 1:
            self._missed(product, trade_id - seen - 1, "match", out)
        return True

    # --- refused products -------------------------------------------------------------------

    def _refused(self, product: _Product, error: wire.Error, out: _Out) -> None:
        """The exchange refused `product`, and with it the whole request that named it: say
        so, subscribe the rest of what that request should have brought, retry it later."""
        self.counters["symbols_refused", self.provider] += 1
        if not product.refused:
            out.changes.append(Change("error", wire.ERROR_CODES[error.message],
                                      f"{error.message}: {error.reason}"[:300], product.symbol))
        product.reset()
        product.refused, product.resyncing = True, False
        out.effects.append(self._next_retry(product))
        rest = [symbol for symbol, other in self.products.items()
                if not other.refused and symbol not in self.listed]
        if rest:
            out.replies.append(self._request("subscribe", rest))

    def _next_retry(self, product: _Product) -> Timer:
        """The refused product's next retry: the wait doubles after each refusal, capped."""
        delay = product.retry_delay * 2 if product.retry_delay else self.refused_retry
        product.retry_delay = min(delay, self.refused_retry_max)
        product.retry_at = self.clock() + product.retry_delay
        return Timer(RETRY_KEY + product.symbol, product.retry_delay)

    def _retries(self) -> list[Effect]:
        """A Timer for each refused product's retry, when it is due (reconnects included)."""
        now = self.clock()
        return [Timer(RETRY_KEY + product.symbol, max(0.0, product.retry_at - now))
                for product in self.products.values() if product.refused]

    # --- losses, bad input, resyncs --------------------------------------------------------

    def _missed(self, product: _Product, count: int, where: str, out: _Out) -> None:
        if count > MAX_GAP:  # not lost trades but a broken id
            self._count(out, "bad_trade_id", f"{product.symbol}: trade ids jump by {count}")
            self._resync(product, "bad_input", "bad_trade_id", out)
            return
        self.counters["trades_missed"] += count
        self._resync(product, "trade_gap", f"{count} trade(s) lost (seen at a {where})", out)

    def _bad(self, out: _Out, exc: Malformed, symbol: str) -> None:
        self._count(out, exc.kind, f"{symbol or 'frame'}: {exc}")
        product = self.products.get(symbol)
        if product is not None:
            self._resync(product, "bad_input", exc.kind, out)

    def _resync(self, product: _Product, reason: str, why: str, out: _Out) -> None:
        """Forget the product's book and trade ids, and ask for a fresh subscription."""
        self.counters["resyncs", reason] += 1
        if not product.resyncing:
            out.changes.append(Change("resyncing", symbol=product.symbol, message=why[:200]))
        product.reset()
        product.resyncing = True
        out.effects.append(Resubscribe(product.symbol, why[:200]))

    def _count(self, out: _Out, reason: str, problem: str) -> None:
        self.counters["bad_input", reason] += 1
        out.problems.append(problem[:300])

    def _symbol_of(self, message: Any, frame: bytes) -> str:
        """Whose message a bad frame was: its product_id, or one found in the raw bytes."""
        symbol = message.get("product_id") if isinstance(message, dict) else None
        if isinstance(symbol, str) and symbol in self.products:
            return symbol
        found = wire.product_in(frame)
        return found if found in self.products else ""

    def _request(self, kind: str, products: list[str]) -> str:
        return wire.request(kind, products, self.channels, self._auth())

    def _auth(self) -> dict[str, str] | None:
        if self.channel != wire.LEVEL2 or self.credentials is None:
            return None
        stamp = str(int(self.clock()))
        return {"key": self.credentials.key, "passphrase": self.credentials.passphrase,
                "timestamp": stamp, "signature": wire.signature(self.credentials.secret, stamp)}


Handler = Callable[[CoinbaseProtocol, _Product, dict[str, Any], int, _Out], None]
HANDLERS: dict[str, Handler] = {
    "snapshot": CoinbaseProtocol._on_snapshot,
    "l2update": CoinbaseProtocol._on_l2update,
    "match": CoinbaseProtocol._on_match,
    "last_match": CoinbaseProtocol._on_match,
    "heartbeat": CoinbaseProtocol._on_heartbeat,
}


def _levels(levels: list[tuple[str, str]]) -> list[tuple[float, float]]:
    """A snapshot side as (price, size) levels; raises Malformed."""
    return [wire.level(price, size) for price, size in levels]

