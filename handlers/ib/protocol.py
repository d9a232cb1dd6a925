"""Interactive Brokers, client side, sans-I/O: what ib_async reports in, bus events and
decisions out, in the vocabulary of handlers.common.protocol (Output, Change, Resubscribe).

ib_async owns the TWS socket and decodes the API (IB has no WebSocket, so there is no frame to
hand over); the handler gives this module ib_async's tickers and errors, and carries out what
comes back. Nothing here touches a socket or imports ib_async: ticks are read by attribute.

- Tick-by-tick AllLast becomes a Trade, BidAsk a Quote. ts_event is when ib_async read the
  tick: it keeps no finer time (TWS's is in whole seconds). Values are checked by the rules of
  handlers.common.values: a tick with a NaN or infinite number, a trade price <= 0, a negative
  size (...) is dropped and counted (bad_input{reason}), as is a tick of a symbol this
  connection never subscribed (`unsubscribed`); a crossed or locked quote is published and
  counted (quotes_crossed{provider="ib"}). A depth row with such a price or size cannot be
  skipped (the rows are positions): it is counted under its reason, and the book resubscribed.
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

from tickmesh.bus.events import BookDelta, BookSnapshot, Event, Quote, Trade
from tickmesh.handlers.common import values
from tickmesh.handlers.common.protocol import Change, Output, Resubscribe
from tickmesh.handlers.ib.depth import DELETE, DepthBook, DepthError

PROVIDER = "ib"
INFORMATIONAL = range(2100, 2200)
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
DEPTH_RESET = 317


def _ns(tick_time: Any) -> int:
    return int(tick_time.timestamp() * 1e9)


def _float(value: Any) -> float:
    """A number of ib_async's (float, int or Decimal) as a float; TypeError if it is none."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"not a number: {type(value).__name__}")
    return float(value)


def trade(symbol: str, tick: Any, ts_recv: int) -> Trade:
    """An ib_async TickByTickAllLast."""
    return Trade(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 price=_float(tick.price), size=_float(tick.size), exchange=str(tick.exchange),
                 conditions=tick.specialConditions.split())


def quote(symbol: str, tick: Any, ts_recv: int) -> Quote:
    """An ib_async TickByTickBidAsk."""
    return Quote(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 bid_price=_float(tick.bidPrice), bid_size=_float(tick.bidSize),
                 ask_price=_float(tick.askPrice), ask_size=_float(tick.askSize))


_TICK_ERRORS = (AttributeError, TypeError, ValueError, OverflowError, ArithmeticError)
"""What a tick that is not one (missing or odd attributes) raises while it is read."""


def problem_of(event: Trade | Quote) -> str:
    """"" for an event fit for the bus, else the handlers.common.values reason to drop it."""
    if isinstance(event, Trade):
        problem = values.trade_problem(event.price, event.size)
    else:
        problem = values.quote_problem(event.bid_price, event.bid_size, event.ask_price,
                                       event.ask_size)
    if problem:
        return problem
    if not event.symbol:
        return values.BAD_SYMBOL
    return "" if 0 < event.ts_event < 2**63 else values.BAD_TIME


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
        problems: list[str] = []
        for ticker in tickers:
            try:
                symbol = ticker.contract.symbol
                ticks, dom_ticks = list(ticker.tickByTicks or ()), list(ticker.domTicks or ())
            except _TICK_ERRORS as exc:
                problems.append(self._bad(values.MALFORMED, f"a ticker that is not one: {exc}"))
                continue
            if not isinstance(symbol, str) or symbol not in self.symbols:
                if ticks or dom_ticks:
                    problems.append(self._bad(values.UNSUBSCRIBED, f"ticks of {symbol!r}"))
                continue
            for tick in ticks:
                kind = type(tick).__name__
                normalize = trade if kind == "TickByTickAllLast" else \
                    quote if kind == "TickByTickBidAsk" else None
                if normalize is None:
                    continue
                try:
                    event = normalize(symbol, tick, ts_recv)
                except _TICK_ERRORS as exc:
                    problems.append(self._bad(values.MALFORMED, f"{kind} of {symbol}: {exc}"))
                    continue
                problem = problem_of(event)
                if problem:
                    problems.append(self._bad(problem, f"{kind} of {symbol}: {problem}"))
                    continue
                if type(event) is Quote and values.crossed(event.bid_price, event.ask_price):
                    self.counters["quotes_crossed", PROVIDER] += 1
                events.append(event)
            if dom_ticks and symbol in self.books:
                self._depth(symbol, dom_ticks, ts_recv, events, effects)
        return Output(events, effects=effects, problem="; ".join(problems[:3]))

    def _bad(self, reason: str, problem: str) -> str:
        self.counters["bad_input", reason] += 1
        return problem

    def _depth(self, symbol: str, ticks: list[Any], ts_recv: int, events: list[Event],
               effects: list[Resubscribe]) -> None:
        book = self.books[symbol]
        try:
            for tick in ticks:
                side, position, operation = tick.side, tick.position, tick.operation
                if type(position) is not int or type(operation) is not int:
                    raise DepthError(f"position {position!r}, operation {operation!r}")
                price, size = _float(tick.price), _float(tick.size)
                if operation != DELETE:  # a delete's price and size are not read
                    problem = values.price_problem(price) or values.size_problem(size)
                    if problem:
                        self.counters["bad_input", problem] += 1
                        raise DepthError(f"{problem}: price {price}, size {size}")
                book.apply(side, position, operation, price, size)
        except (DepthError, *_TICK_ERRORS) as exc:
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
