"""Kraken pairs' true books, trades and spreads, for the simulator (pure, no I/O).

Each pair's book holds MIN_LEVELS to MAX_LEVELS levels a side (more than the deepest
subscription, 1000, so that a level leaving the top brings one back from below) around the
shared market's quote of its fair price (handlers/common/market.py: BTC-USD follows "BTC"'s
path, as at every venue), on the pair's own tick (0.1 for XBT/USD, as Kraken quotes it).
Every `step(now_ns)` moves it: levels the quote passed are removed, the top follows the quote,
the far end is trimmed or refilled, a few volumes change. A `trade` takes from the best level
of one side. The book is never crossed.

What goes to a subscriber of depth d is the change of the book's top d levels (`View`): the
levels that changed inside it, volume "0.00000000" for those deleted from the book, nothing
for those merely pushed below the depth (the client truncates), and a republish ("r") for
each level that came back into the top d from below; `c` is the checksum of the new top 10
(handlers.kraken.checksum). So a client that applies the updates and truncates to d holds the
top d exactly, and every `c` matches.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort

from tickmesh.handlers.common.market import fair_price, quote
from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.checksum import CHECKSUM_LEVELS, checksum

MIN_LEVELS, MAX_LEVELS = 1010, 1060
SIZE_CHANGES = 3  # levels whose volume changes at most, per side per step
ZERO = "0.00000000"
SIDES = ("a", "b")


def decimals(price: float) -> int:
    """Price decimals of a pair at `price` (Kraken: XBT/USD 1, ETH/USD 2, cheaper ones more)."""
    return 1 if price >= 10_000 else 2 if price >= 10 else 4 if price >= 0.1 else 6


class PairBook:
    """One pair's book: levels by price in ticks, each volume a string as sent."""

    def __init__(self, symbol: str, rng: random.Random, now_ns: int) -> None:
        self.symbol = symbol
        self.native = wire.native_pair(symbol)
        self.rng = rng
        self.decimals = decimals(fair_price(symbol, now_ns))
        self.scale = 10 ** self.decimals
        self.depth = {side: rng.randint(MIN_LEVELS, MAX_LEVELS) for side in SIDES}
        self.levels: dict[str, dict[int, str]] = {"a": {}, "b": {}}
        self.prices: dict[str, list[int]] = {"a": [], "b": []}  # ascending
        self.unit = max(1, round(fair_price(symbol, now_ns) * 0.00001 * self.scale))
        self.step(now_ns)

    # --- values ----------------------------------------------------------------------------

    def text(self, price: int) -> str:
        whole, part = divmod(price, self.scale)
        return f"{whole}.{part:0{self.decimals}d}"

    def _volume(self) -> str:
        return f"{self.rng.uniform(0.001, 3.0):.8f}"

    # --- the book --------------------------------------------------------------------------

    def step(self, now_ns: int) -> dict[tuple[str, int], str]:
        """Move the book to `now_ns`: {(side, price): new volume (ZERO: deleted)}."""
        bid, ask = quote(fair_price(self.symbol, now_ns))
        tops = {"b": int(bid * self.scale + 1e-6), "a": -int(-ask * self.scale + 1e-6)}
        changes: dict[tuple[str, int], str] = {}
        for side in SIDES:
            self._follow(side, tops[side], changes)
            self._fill(side, changes)
            self._wiggle(side, changes)
        return changes

    def top(self, side: str, n: int | None = None) -> list[int]:
        """The best `n` prices of `side` (all if None), best first."""
        prices = self.prices[side]
        if side == "b":
            return prices[::-1] if n is None else prices[:-n - 1:-1] if n > 0 else []
        return prices[:n]

    def _better(self, side: str, a: int, b: int) -> bool:
        return a > b if side == "b" else a < b

    def _follow(self, side: str, top: int, changes: dict) -> None:
        """Remove the levels the quote passed; put a level at the quote's price."""
        for price in [p for p in self.top(side, 50) if self._better(side, p, top)]:
            self._set(side, price, ZERO, changes)
        if top not in self.levels[side]:
            self._set(side, top, self._volume(), changes)

    def _fill(self, side: str, changes: dict) -> None:
        """Trim or refill the far end to the side's depth."""
        prices = self.prices[side]
        while len(prices) > self.depth[side]:
            self._set(side, prices[0] if side == "b" else prices[-1], ZERO, changes)
        while len(prices) < self.depth[side]:
            worst = prices[0] if side == "b" else prices[-1]
            price = worst + (-1 if side == "b" else 1) * self.unit * self.rng.randint(1, 3)
            if price <= 0:
                break
            self._set(side, price, self._volume(), changes)

    def _wiggle(self, side: str, changes: dict) -> None:
        """A few volumes change, mostly near the top."""
        prices = self.top(side, 200)
        for _ in range(self.rng.randint(0, SIZE_CHANGES)):
            index = min(len(prices) - 1, int(self.rng.expovariate(1 / 8)))
            self._set(side, prices[index], self._volume(), changes)

    def _set(self, side: str, price: int, volume: str, changes: dict) -> None:
        levels = self.levels[side]
        if volume == ZERO:
            if levels.pop(price, None) is not None:
                del self.prices[side][bisect_left(self.prices[side], price)]
        else:
            if price not in levels:
                insort(self.prices[side], price)
            levels[price] = volume
        changes[side, price] = volume

    def trade(self, now_ns: int) -> tuple[list[str], dict[tuple[str, int], str]]:
        """A trade against the best level of a random side: (its trade entry, the change)."""
        maker = self.rng.choice(SIDES)
        price = self.top(maker, 1)[0]
        held = float(self.levels[maker][price])
        size = round(min(held, self.rng.uniform(0.0005, 0.5)), 8)
        left = round(held - size, 8)
        changes: dict[tuple[str, int], str] = {}
        self._set(maker, price, f"{left:.8f}" if left > 0 else ZERO, changes)
        if not self.levels[maker]:
            self._set(maker, price, self._volume(), changes)
        taker = "b" if maker == "a" else "s"
        return [self.text(price), f"{size:.8f}", wire.format_time(now_ns), taker, "l", ""], changes

    # --- what subscribers see --------------------------------------------------------------

    def snapshot(self, depth: int, now_ns: int) -> dict[str, list[list[str]]]:
        """The top `depth` levels a side, best first, as a book snapshot's payload."""
        stamp = wire.format_time(now_ns)
        return {"as": [[self.text(p), self.levels["a"][p], stamp] for p in self.top("a", depth)],
                "bs": [[self.text(p), self.levels["b"][p], stamp] for p in self.top("b", depth)]}

    def book(self, depth: int) -> dict[str, list[list[str]]]:
        """The true book's top `depth` levels a side (strings), for the test control."""
        return {side: [[self.text(p), self.levels[key][p]] for p in self.top(key, depth)]
                for side, key in (("asks", "a"), ("bids", "b"))}

    def checksum(self) -> int:
        return checksum(*([(self.text(p), self.levels[side][p])
                           for p in self.top(side, CHECKSUM_LEVELS)] for side in SIDES))

    def spread(self, now_ns: int) -> list[str]:
        ask, bid = self.top("a", 1)[0], self.top("b", 1)[0]
        return [self.text(bid), self.text(ask), wire.format_time(now_ns), self.levels["b"][bid],
                self.levels["a"][ask]]


class View:
    """What a subscriber of one depth holds of a pair's book: the top `depth` prices a side."""

    def __init__(self, book: PairBook, depth: int) -> None:
        self.book = book
        self.depth = depth
        self.held = {side: set(book.top(side, depth)) for side in SIDES}

    def update(self, changes: dict[tuple[str, int], str], now_ns: int
               ) -> dict[str, list[list[str]]]:
        """The payload ({"a": levels} and/or {"b": levels}) that takes a subscriber from the
        last top to this one ({} if its top did not change)."""
        book, stamp, out = self.book, wire.format_time(now_ns), {}
        for side in SIDES:
            now = set(book.top(side, self.depth))
            levels = []
            for (changed_side, price), volume in changes.items():
                if changed_side == side and (price in now or
                                             (volume == ZERO and price in self.held[side])):
                    levels.append([book.text(price), volume, stamp])
            for price in sorted(now - self.held[side] - {p for s, p in changes if s == side}):
                levels.append([book.text(price), book.levels[side][price], stamp, "r"])
            self.held[side] = now
            if levels:
                out[side] = levels
        return out
