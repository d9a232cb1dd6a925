"""Interactive Brokers, client side, sans-I/O: what ib_async reports in, bus events and
decisions out, in the vocabulary of handlers.common.protocol (Output, Change, Resubscribe).

ib_async owns the TWS socket and decodes the API (IB has no WebSocket, so there is no frame to
hand over); the handler gives this module ib_async's tickers and errors, and carries out what
comes back. Nothing here touches a socket or imports ib_async: ticks are read by attribute.

- Tick-by-tick AllLast becomes a Trade, BidAsk a Quote. ts_event is when ib_async read the
  tick: it keeps no finer time (TWS's is in whole seconds).
- Market depth is position-indexed; handlers.ib.depth turns it into price levels: a
  BookSnapshot with the first depth batch after each (re)subscription, BookDelta after it.
  Depth that does not fit the book asks for `Resubscribe(symbol)`, and that symbol's depth is
  ignored until `subscribed(symbol)` says the new subscription is in place.
- IB's error codes: 2100-2199 are notices (problem text only); 1100 (TWS lost IB) is
  "disconnected"; 1101 and 1102 (restored) are "subscribed", and 1101 (data lost) also asks
  for every symbol to be resubscribed; 317 resets that symbol's book; any other code is an
  "error" Status, for the symbol it concerns if any.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from bus.events import BookDelta, BookSnapshot, Event, Quote, Trade
from handlers.common.protocol import Change, Output, Resubscribe
from handlers.ib.depth import DepthBook, DepthError

PROVIDER = "ib"
INFORMATIONAL = range(2100, 2200)
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
DEPTH_RESET = 317


def _ns(tick_time: Any) -> int:
    return int(tick_time.timestamp() * 1e9)


def trade(symbol: str, tick: Any, ts_recv: int) -> Trade:
    """An ib_async TickByTickAllLast."""
    return Trade(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 price=tick.price, size=tick.size, exchange=tick.exchange,
                 conditions=tick.specialConditions.split())


def quote(symbol: str, tick: Any, ts_recv: int) -> Quote:
    """An ib_async TickByTickBidAsk."""
    return Quote(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 bid_price=tick.bidPrice, bid_size=tick.bidSize, ask_price=tick.askPrice,
                 ask_size=tick.askSize)


class IbProtocol:
    provider = PROVIDER

    def __init__(self, counters: Counter | None = None) -> None:
        self.counters: Counter = counters if counters is not None else Counter()
        self.symbols: list[str] = []  # subscribed on this connection
        self.books: dict[str, DepthBook] = {}
        self.snapshot_due: set[str] = set()
        self.generations: Counter = Counter()  # snapshots published per symbol

    def start(self) -> None:
        """A new connection: nothing of the last one's subscriptions is valid."""
        self.symbols = []
        self.books.clear()
        self.snapshot_due.clear()

    def subscribed(self, symbol: str, depth: bool) -> None:
        """`symbol`'s streams were (re)requested; with depth, its book starts empty."""
        if symbol not in self.symbols:
            self.symbols.append(symbol)
        if depth:
            self.books.setdefault(symbol, DepthBook()).clear()
            self.snapshot_due.add(symbol)

    def tickers(self, tickers: Iterable[Any], ts_recv: int) -> Output:
        """ib_async's pending tickers: their tick-by-tick data and depth operations."""
        events: list[Event] = []
        effects: list[Resubscribe] = []
        for ticker in tickers:
            symbol = ticker.contract.symbol
            for tick in ticker.tickByTicks:
                kind = type(tick).__name__
                if kind == "TickByTickAllLast":
                    events.append(trade(symbol, tick, ts_recv))
                elif kind == "TickByTickBidAsk":
                    events.append(quote(symbol, tick, ts_recv))
            if ticker.domTicks and symbol in self.books:
                self._depth(symbol, ticker.domTicks, ts_recv, events, effects)
        return Output(events, effects=effects)

    def _depth(self, symbol: str, ticks: list[Any], ts_recv: int, events: list[Event],
               effects: list[Resubscribe]) -> None:
        book = self.books[symbol]
        try:
            for tick in ticks:
                book.apply(tick.side, tick.position, tick.operation, tick.price, tick.size)
        except DepthError as exc:
            self.counters["bad_input", "depth_out_of_step"] += 1
            del self.books[symbol]  # ignored until the new subscription
            effects.append(Resubscribe(symbol, f"depth out of step with the book: {exc}"))
            return
        generation = self.generations[symbol]
        if symbol in self.snapshot_due:
            self.snapshot_due.discard(symbol)
            generation = self.generations[symbol] = generation + 1
            bids, asks = book.snapshot()
            events.append(BookSnapshot(provider=PROVIDER, symbol=symbol, ts_event=ts_recv,
                                       ts_recv=ts_recv, bids=bids, asks=asks,
                                       generation=generation))
        else:
            bids, asks = book.delta()
            if bids or asks:
                events.append(BookDelta(provider=PROVIDER, symbol=symbol, ts_event=ts_recv,
                                        ts_recv=ts_recv, bids=bids, asks=asks,
                                        generation=generation))

    def error(self, code: int, text: str, symbol: str = "") -> Output:
        """One of TWS's error messages (for the contract of `symbol`, if any)."""
        if code in INFORMATIONAL:
            return Output(problem=f"TWS notice {code}: {text}")
        if code == CONNECTIVITY_LOST:
            return Output(changes=[Change("disconnected", code, text)])
        if code == RESTORED_DATA_LOST:
            return Output(changes=[Change("subscribed", code, text)],
                          effects=[Resubscribe(s, "data lost") for s in self.symbols])
        if code == RESTORED_DATA_KEPT:
            return Output(changes=[Change("subscribed", code, text)])
        if code == DEPTH_RESET and symbol in self.books:
            self.subscribed(symbol, depth=True)
            return Output(problem=f"TWS reset the depth book of {symbol}: {text}")
        return Output(changes=[Change("error", code, text, symbol)])
