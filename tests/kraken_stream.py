"""A Kraken WebSocket v1 book stream as Kraken would send it, made here independently of the
handler and the simulator: its events, each pair's depth-1000 snapshot, then updates (changed
volumes, new levels, deleted ones with the level they uncover republished as "r", both sides
in one message as two objects), trades in between, each update's `c` computed by this
module's own reading of Kraken's checksum; and the book it implies after every update."""

from __future__ import annotations

import json
import random
import zlib
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from pathlib import Path

from tests.books import Book

DEPTH = 1000
HIDDEN = 1030  # levels a side the venue holds: more than the depth, so deletions uncover some
PAIRS = (("BTC-USD", "XBT/USD", 60_000, 1), ("ETH-USD", "ETH/USD", 3_000, 2),
         ("DOGE-USD", "XDG/USD", 0.1, 7))
"""(bus symbol, Kraken pair, mid price, price decimals)."""
T0 = 1_700_000_000.0
ZERO = "0.00000000"


def crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    text = "".join(s.replace(".", "").lstrip("0") for p, v in asks[:10] + bids[:10]
                   for s in (p, v))
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


@dataclass
class Venue:
    """One pair's book as the venue holds it (deeper than the depth), and what a subscriber
    at `depth` holds of it."""

    symbol: str
    native: str
    decimals: int
    depth: int = DEPTH
    levels: dict[str, dict[int, str]] = field(default_factory=lambda: {"a": {}, "b": {}})
    prices: dict[str, list[int]] = field(default_factory=lambda: {"a": [], "b": []})
    held: dict[str, set[int]] = field(default_factory=dict)

    def text(self, price: int) -> str:
        whole, part = divmod(price, 10 ** self.decimals)
        return f"{whole}.{part:0{self.decimals}d}"

    def top(self, side: str, n: int | None = None) -> list[int]:
        n = self.depth if n is None else n
        prices = self.prices[side]
        return prices[:-n - 1:-1] if side == "b" else prices[:n]

    def set(self, side: str, price: int, volume: str) -> None:
        levels, prices = self.levels[side], self.prices[side]
        if volume == ZERO:
            if levels.pop(price, None) is not None:
                del prices[bisect_left(prices, price)]
        else:
            if price not in levels:
                insort(prices, price)
            levels[price] = volume

    def strings(self, side: str, n: int | None = None) -> list[tuple[str, str]]:
        return [(self.text(p), self.levels[side][p]) for p in self.top(side, n)]

    def book(self) -> Book:
        """The top `depth` a side as floats: (bids, asks)."""
        return ({float(p): float(v) for p, v in self.strings("b")},
                {float(p): float(v) for p, v in self.strings("a")})


@dataclass
class Recording:
    path: Path
    books: dict[str, Book]  # each symbol's book at the end
    states: dict[str, list[int]]  # digests of each symbol's book after its snapshot and each
    # update, in order
    updates: dict[str, int]  # each symbol's number of updates
    checksums: dict[str, list[str]]  # each symbol's updates' `c`, in order


def digest(book: Book) -> int:
    """A book's fingerprint, to compare books without keeping them all."""
    bids, asks = book
    return hash((tuple(sorted(bids.items())), tuple(sorted(asks.items()))))


def _volume(rng: random.Random) -> str:
    return f"{rng.uniform(0.0001, 10):.8f}"


def _changes(pair: Venue, rng: random.Random) -> dict[tuple[str, int], str]:
    """One update's changes to the venue's book (never crossing it)."""
    changes: dict[tuple[str, int], str] = {}
    for side in rng.choice((("a",), ("b",), ("a", "b"))):
        for _ in range(rng.randint(1, 3)):
            deep = rng.random() < 0.1
            index = rng.randint(DEPTH - 20, DEPTH + 5) if deep else \
                min(int(rng.expovariate(1 / 6)), 40)
            prices = pair.top(side, HIDDEN)
            price = prices[min(index, len(prices) - 1)]
            kind = rng.random()
            if kind < 0.5:
                volume = _volume(rng)
            elif kind < 0.75:
                volume = ZERO
            else:  # a new level just behind it, if that price is free
                price += -1 if side == "b" else 1
                volume = ZERO if price in pair.levels[side] else _volume(rng)
                if volume == ZERO:
                    continue
            pair.set(side, price, volume)
            changes[side, price] = volume
        while len(pair.prices[side]) < HIDDEN:  # the venue's far end refills, unseen
            worst = pair.prices[side][0] if side == "b" else pair.prices[side][-1]
            far = worst + (-1 if side == "b" else 1) * rng.randint(1, 3)
            pair.set(side, far, _volume(rng))
            changes[side, far] = pair.levels[side][far]
    return changes


def update(pair: Venue, changes: dict[tuple[str, int], str], stamp: str) -> list:
    """The payload objects that take a subscriber from the held top to the new one, `c` in
    the last ([] if its top did not change); the venue's book already has the changes."""
    objects = []
    for side in ("a", "b"):
        now = set(pair.top(side))
        levels = [[pair.text(p), v, stamp] for (s, p), v in changes.items()
                  if s == side and (p in now or (v == ZERO and p in pair.held[side]))]
        changed = {p for s, p in changes if s == side}
        levels += [[pair.text(p), pair.levels[side][p], stamp, "r"]
                   for p in sorted(now - pair.held[side] - changed)]
        pair.held[side] = now
        if levels:
            objects.append({side: levels})
    if objects:
        objects[-1]["c"] = str(crc(pair.strings("a", 10), pair.strings("b", 10)))
    return objects


def record(path: Path, seed: int = 18, updates: int = 1200) -> Recording:
    """Write the stream to `path` (one frame per line)."""
    rng = random.Random(seed)
    pairs = [Venue(symbol, native, decimals) for symbol, native, _, decimals in PAIRS]
    lines = [json.dumps({"connectionID": 1, "event": "systemStatus", "status": "online",
                         "version": "1.9.5"})]
    states: dict[str, list[int]] = {}
    for n, ((_, _, mid, decimals), pair) in enumerate(zip(PAIRS, pairs)):
        centre = round(mid * 10 ** decimals)
        for side, sign in (("a", 1), ("b", -1)):
            price = centre
            for _ in range(HIDDEN):
                price += sign * rng.randint(1, 3)
                pair.set(side, price, _volume(rng))
            pair.held[side] = set(pair.top(side))
        lines.append(json.dumps({"channelID": 10 + n, "channelName": "book-1000",
                                 "event": "subscriptionStatus", "pair": pair.native,
                                 "status": "subscribed",
                                 "subscription": {"depth": 1000, "name": "book"}}))
        stamp = f"{T0:.6f}"
        lines.append(json.dumps([10 + n, {
            "as": [[p, v, stamp] for p, v in pair.strings("a")],
            "bs": [[p, v, stamp] for p, v in pair.strings("b")]}, "book-1000", pair.native]))
        states[pair.symbol] = [digest(pair.book())]
    counts = dict.fromkeys(states, 0)
    checksums: dict[str, list[str]] = {symbol: [] for symbol in states}
    for i in range(updates):
        n = rng.randrange(len(pairs))
        pair = pairs[n]
        stamp = f"{T0 + 0.002 * (i + 1):.6f}"
        objects = update(pair, _changes(pair, rng), stamp)
        if not objects:
            continue
        lines.append(json.dumps([10 + n, *objects, "book-1000", pair.native]))
        states[pair.symbol].append(digest(pair.book()))
        counts[pair.symbol] += 1
        checksums[pair.symbol].append(objects[-1]["c"])
        if i % 40 == 0:
            best = pair.text(pair.top("a", 1)[0])
            lines.append(json.dumps([20 + n, [[best, "0.01000000", stamp, "b", "l", ""]],
                                     "trade", pair.native]))
        if i % 300 == 0:
            lines.append(json.dumps({"event": "heartbeat"}))
    path.write_text("\n".join(lines) + "\n")
    return Recording(path, {p.symbol: p.book() for p in pairs}, states, counts, checksums)
