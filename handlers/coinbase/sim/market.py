"""Coinbase products' true L2 books and trades, for the simulator (pure, no I/O).

Each product's book holds 50 to 100 levels a side around the shared market's quote of its
fair price (handlers/common/market.py: BTC-USD follows "BTC"'s path, as at every venue),
prices in whole cents. Every `step(now_ns)` moves it: levels the quote passed are removed,
the top follows the quote, the far end is trimmed or refilled to the side's depth, and a few
sizes change; what changed comes back as one `l2update` (absolute sizes, "0" removes). A
`trade` takes from the best level of one side (the maker's) and is a `match` with the
product's next trade id. The book is never crossed: bids stay at or below the quote's bid,
asks at or above its ask.

Sequences: each product counts all of its messages as the real full channel would (every
book change and every match), so the sequences that matches and heartbeats carry increase
but skip, as Coinbase's do.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from tickmesh.handlers.coinbase import wire
from tickmesh.handlers.common.market import TICK, fair_price, quote

MIN_LEVELS, MAX_LEVELS = 50, 100
SIZE_CHANGES = 3  # levels whose size changes at most, per side per step


def cents(price: float) -> int:
    return round(price / TICK)


def price_text(price: int) -> str:
    return f"{price // 100}.{price % 100:02d}"


def size_text(size: float) -> str:
    return f"{size:.8f}"


class Book:
    """One product's book, trades and sequence."""

    def __init__(self, symbol: str, rng: random.Random, now_ns: int) -> None:
        self.symbol = symbol
        self.rng = rng
        self.depth = {"buy": rng.randint(MIN_LEVELS, MAX_LEVELS),
                      "sell": rng.randint(MIN_LEVELS, MAX_LEVELS)}
        self.levels: dict[str, dict[int, float]] = {"buy": {}, "sell": {}}
        self.unit = max(1, cents(fair_price(symbol, now_ns) * 0.00001))  # ~0.1 bp
        self.trade_id = 0
        self.sequence = 0
        self.last: dict[str, Any] | None = None  # the latest match
        self.step(now_ns)

    # --- the book --------------------------------------------------------------------------

    def step(self, now_ns: int) -> dict[str, Any] | None:
        """Move the book to `now_ns`; the l2update of what changed (None: nothing did)."""
        bid, ask = (cents(p) for p in quote(fair_price(self.symbol, now_ns)))
        changes: dict[tuple[str, int], float] = {}
        for side, top in (("buy", bid), ("sell", ask)):
            self._follow(side, top, changes)
            self._fill(side, changes)
            self._wiggle(side, changes)
        return self._update(changes, now_ns)

    def _better(self, side: str, a: int, b: int) -> bool:
        return a > b if side == "buy" else a < b

    def _follow(self, side: str, top: int, changes: dict) -> None:
        """Remove the levels the quote passed; put a level at the quote's price."""
        book = self.levels[side]
        for price in [p for p in book if self._better(side, p, top)]:
            self._set(side, price, 0.0, changes)
        if top not in book:
            self._set(side, top, self._size(), changes)

    def _fill(self, side: str, changes: dict) -> None:
        """Trim or refill the far end to the side's depth."""
        book = self.levels[side]
        sign = -1 if side == "buy" else 1
        while len(book) > self.depth[side]:
            self._set(side, max(book, key=lambda p: sign * p), 0.0, changes)
        while len(book) < self.depth[side]:
            worst = max(book, key=lambda p: sign * p)
            price = worst + sign * self.unit * self.rng.randint(1, 3)
            if price <= 0:
                break
            self._set(side, price, self._size(), changes)

    def _wiggle(self, side: str, changes: dict) -> None:
        """A few sizes change, mostly near the top."""
        prices = sorted(self.levels[side], reverse=side == "buy")
        for _ in range(self.rng.randint(0, SIZE_CHANGES)):
            index = min(len(prices) - 1, int(self.rng.expovariate(1 / 8)))
            self._set(side, prices[index], self._size(), changes)

    def _size(self) -> float:
        return round(self.rng.uniform(0.001, 3.0), 8)

    def _set(self, side: str, price: int, size: float, changes: dict) -> None:
        if size > 0:
            self.levels[side][price] = size
        else:
            self.levels[side].pop(price, None)
        changes[side, price] = size
        self.sequence += 1

    def _update(self, changes: dict[tuple[str, int], float], now_ns: int) -> dict | None:
        if not changes:
            return None
        return {"type": "l2update", "product_id": self.symbol,
                "changes": [[side, price_text(price), size_text(size)]
                            for (side, price), size in changes.items()],
                "time": wire.format_time(now_ns)}

    def snapshot(self, depth: int = 0) -> dict[str, Any]:
        """The whole book (or its top `depth` levels a side), best first, as on the wire."""
        def side(name: str) -> list[list[str]]:
            prices = sorted(self.levels[name], reverse=name == "buy")
            return [[price_text(p), size_text(self.levels[name][p])]
                    for p in prices[:depth or None]]
        return {"type": "snapshot", "product_id": self.symbol, "bids": side("buy"),
                "asks": side("sell")}

    # --- trades ----------------------------------------------------------------------------

    def trade(self, now_ns: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A trade against the best level of a random side: (its match, its l2update)."""
        maker = self.rng.choice(("buy", "sell"))
        book = self.levels[maker]
        price = max(book) if maker == "buy" else min(book)
        size = round(min(book[price], self.rng.uniform(0.0005, 0.5)), 8)
        changes: dict[tuple[str, int], float] = {}
        left = round(book[price] - size, 8)
        self._set(maker, price, left if left > 0 else 0.0, changes)
        self.trade_id += 1
        self.sequence += 1
        self.last = {
            "type": "match", "trade_id": self.trade_id, "sequence": self.sequence,
            "maker_order_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "taker_order_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "time": wire.format_time(now_ns), "product_id": self.symbol,
            "size": size_text(size), "price": price_text(price), "side": maker,
        }
        if not book:  # never leave a side empty
            self._follow(maker, price, changes)
        return self.last, self._update(changes, now_ns)

    def last_match(self) -> dict[str, Any] | None:
        return None if self.last is None else {**self.last, "type": "last_match"}

    def heartbeat(self, now_ns: int) -> dict[str, Any]:
        return {"type": "heartbeat", "sequence": self.sequence, "last_trade_id": self.trade_id,
                "product_id": self.symbol, "time": wire.format_time(now_ns)}


class Market:
    """Every product's book; `advance(now_ns)` moves them all and says what happened."""

    def __init__(self, symbols: list[str], rate: float, now_ns: int,
                 seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.books = {symbol: Book(symbol, self.rng, now_ns) for symbol in symbols}
        self._budget = dict.fromkeys(symbols, 0.0)
        self._last_ns = now_ns

    def advance(self, now_ns: int) -> list[dict[str, Any]]:
        """One step of every book, and `rate` trades a second per product: the messages."""
        elapsed = max(0, now_ns - self._last_ns) / 1e9
        self._last_ns = now_ns
        out: list[dict[str, Any]] = []
        for symbol, book in self.books.items():
            update = book.step(now_ns)
            if update:
                out.append(update)
            self._budget[symbol] += self.rate * elapsed * self.rng.uniform(0.5, 1.5)
            while self._budget[symbol] >= 1:
                self._budget[symbol] -= 1
                out.extend(m for m in book.trade(now_ns) if m)
        return out
