"""One symbol's spot market in Binance's wire format, for the simulator (pure, no I/O, the
time comes in as an argument).

The book is a realistic L2 book: about LEVELS price levels a side, on the symbol's tick, around
the shared market's fair price (handlers.common.market: BTC-USDT follows BTC's path), with
random sizes. Every change to it (a level's size changed, a level added or removed, the book
re-centred on the moving price, a trade taking size off the touch) gets the next update id, as
Binance's lastUpdateId counts. `step(now)` makes `rate` random changes a second (and a trade
now and then, returned at once); `flush(now)` returns the changes since the last flush as one
depthUpdate (U = first id, u = last id, each changed level once with its final size, "0" for a
removed one), as Binance batches them every 100 ms, and a bookTicker when the touch changed.
`gap()` makes the next depthUpdate get lost on its way (a provider-side gap: the book moved,
nobody was told). Prices are integer ticks inside, decimal strings on the wire.
"""

from __future__ import annotations

import math
import random
from typing import Any

from tickmesh.handlers.common.market import fair_price, half_spread
from tickmesh.handlers.common.symbols import joined

LEVELS = 60
"""Levels a side, about: the band is twice as wide and about half its ticks hold size."""
BAND = 2 * LEVELS
LOT_DECIMALS = 5
TRADES_PER_CHANGE = 0.1
MIX = (("size", 0.75), ("remove", 0.08), ("add", 0.17))
"""Kinds of random change. An add lands on an empty tick of the BAND with the chance
(BAND - n) / BAND, so a side settles near n = BAND * (1 - remove / add): about LEVELS."""

Side = dict[int, int]  # tick index -> size in lots


def tick_of(price: float) -> tuple[float, int]:
    """(tick, decimals) for a price: a tick moves it about 1e-5 or less (BTC 1, ETH 0.1)."""
    exponent = max(-8, math.floor(math.log10(price * 5e-5)))
    return 10.0 ** exponent, max(0, -exponent)


class SymbolMarket:
    def __init__(self, symbol: str, rate: float, rng: random.Random, now_ns: int) -> None:
        self.symbol = symbol
        self.native = joined(symbol)
        self.rate = rate
        self.rng = rng
        self.tick, self.decimals = tick_of(fair_price(symbol, now_ns))
        self.bids: Side = {}
        self.asks: Side = {}
        self.last_id = rng.randint(1_000_000, 9_000_000)
        self.pending: dict[tuple[str, int], int] = {}  # (side, tick) -> final size
        self.first_pending = 0
        self.trade_id = rng.randint(100_000, 900_000)
        self.budget = 0.0
        self.last_ns = now_ns
        self.top: tuple[int, int, int, int] | None = None
        self.lose_next = False
        self._recentre(now_ns)
        for index in range(LEVELS):
            self._set("b", self._best("b") - 2 * index, self._size())
            self._set("a", self._best("a") + 2 * index, self._size())

    # --- the wire ----------------------------------------------------------------------------

    def price(self, index: int) -> str:
        return f"{index * self.tick:.{self.decimals}f}"

    def size(self, lots: int) -> str:
        return f"{lots / 10 ** LOT_DECIMALS:.{LOT_DECIMALS}f}"

    def levels(self, side: Side, depth: int) -> list[list[str]]:
        order = sorted(side, reverse=side is self.bids)[:depth]
        return [[self.price(i), self.size(side[i])] for i in order]

    def snapshot(self, limit: int) -> dict[str, Any]:
        """The REST depth answer: the book as of the last update id (sent or not yet)."""
        return {"lastUpdateId": self.last_id, "bids": self.levels(self.bids, limit),
                "asks": self.levels(self.asks, limit)}

    # --- time passing ----------------------------------------------------------------------

    def step(self, now_ns: int) -> list[dict[str, Any]]:
        """The changes since the last step; returns the trades among them."""
        elapsed = max(0, now_ns - self.last_ns) / 1e9
        self.last_ns = now_ns
        self._recentre(now_ns)
        self.budget += self.rate * elapsed
        trades = []
        while self.budget >= 1:
            self.budget -= 1
            if self.rng.random() < TRADES_PER_CHANGE:
                trades.append(self._trade(now_ns // 1_000_000))
            else:
                self._random_change()
        return trades

    def flush(self, now_ms: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the depthUpdate of the changes since the last flush, a bookTicker if the touch
        moved); either may be None. A gap() loses the depthUpdate."""
        depth = None
        if self.pending:
            depth = {"e": "depthUpdate", "E": now_ms, "s": self.native,
                     "U": self.first_pending, "u": self.last_id,
                     "b": self._changed("b"), "a": self._changed("a")}
            self.pending.clear()
            if self.lose_next:
                self.lose_next, depth = False, None
        return depth, self._ticker()

    def gap(self) -> None:
        self.lose_next = True

    def burst_trade(self, now_ms: int) -> dict[str, Any]:
        """A trade print at the touch that leaves the book as it is."""
        self.trade_id += 1
        index = self._best("a")
        return self._trade_message(index, self.rng.randint(1, 1000), False, now_ms)

    # --- changes ---------------------------------------------------------------------------

    def _set(self, side: str, index: int, lots: int) -> None:
        book = self.bids if side == "b" else self.asks
        if lots:
            book[index] = lots
        elif index in book:
            del book[index]
        else:
            return
        self.last_id += 1
        if not self.pending:
            self.first_pending = self.last_id
        self.pending[side, index] = lots

    def _best(self, side: str) -> int:
        if side == "b":
            return max(self.bids) if self.bids else self._target()[0]
        return min(self.asks) if self.asks else self._target()[1]

    def _target(self, now_ns: int | None = None) -> tuple[int, int]:
        """The touch the fair price asks for: (best bid, best ask) in ticks."""
        price = fair_price(self.symbol, now_ns if now_ns is not None else self.last_ns)
        half = half_spread(price)
        bid = math.floor((price - half) / self.tick)
        return bid, max(bid + 1, math.ceil((price + half) / self.tick))

    def _recentre(self, now_ns: int) -> None:
        """Follow the fair price: nothing through the new touch, size at it, nothing far."""
        bid, ask = self._target(now_ns)
        for index in [i for i in self.bids if i > bid or i < bid - BAND]:
            self._set("b", index, 0)
        for index in [i for i in self.asks if i < ask or i > ask + BAND]:
            self._set("a", index, 0)
        if bid not in self.bids:
            self._set("b", bid, self._size())
        if ask not in self.asks:
            self._set("a", ask, self._size())

    def _random_change(self) -> None:
        side = self.rng.choice("ba")
        book = self.bids if side == "b" else self.asks
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        best = self._best(side)
        if kind == "add" or len(book) < 2:
            offset = self.rng.randint(1, BAND)
            self._set(side, best - offset if side == "b" else best + offset, self._size())
        elif kind == "remove":
            self._set(side, self.rng.choice([i for i in book if i != best]), 0)
        else:
            self._set(side, self.rng.choice(list(book)), self._size())

    def _trade(self, now_ms: int) -> dict[str, Any]:
        """A market order against the touch: buyer_is_maker when it sold into the bid."""
        sold = self.rng.random() < 0.5
        side = "b" if sold else "a"
        index = self._best(side)
        book = self.bids if sold else self.asks
        lots = self.rng.randint(1, max(1, book.get(index, 1)))
        self._set(side, index, max(0, book.get(index, 0) - lots))
        self.trade_id += 1
        return self._trade_message(index, lots, sold, now_ms)

    def _trade_message(self, index: int, lots: int, sold: bool, now_ms: int) -> dict[str, Any]:
        return {"e": "trade", "E": now_ms, "s": self.native, "t": self.trade_id,
                "p": self.price(index), "q": self.size(lots), "T": now_ms, "m": sold, "M": True}

    def _size(self) -> int:
        return self.rng.randint(1, 500) * self.rng.choice((1, 10, 100))

    def _changed(self, side: str) -> list[list[str]]:
        return [[self.price(i), self.size(lots)] for (s, i), lots in self.pending.items()
                if s == side]

    def _ticker(self) -> dict[str, Any] | None:
        bid, ask = self._best("b"), self._best("a")
        top = (bid, self.bids.get(bid, 0), ask, self.asks.get(ask, 0))
        if top == self.top:
            return None
        self.top = top
        return {"u": self.last_id, "s": self.native, "b": self.price(bid), "B": self.size(top[1]),
                "a": self.price(ask), "A": self.size(top[3])}
