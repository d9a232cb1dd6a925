"""Kraken's book checksum (WebSocket API v1), and the book of strings it is computed over.
Pure: no I/O.

The checksum, as Kraken documents it ("Book checksum (WebSocket v1)"): after an update is
applied and the book truncated to the subscribed depth, take the top 10 asks, lowest price
first, then the top 10 bids, highest first; for each level its price then its volume, each
exactly as received with the "." removed and the leading zeros stripped ("0.05005" -> "5005",
"0.00000500" -> "500"); concatenate them all; CRC32 of that string, as an unsigned 32-bit
integer, is the `c` of the update. Snapshots carry none.

The strings must be the ones received: a float printed back ("0.05" for "0.05000") gives
another string and another CRC. So `StringBook` keeps each level's price and volume strings
as they came, ordered by the price's value.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from typing import Iterable

CHECKSUM_LEVELS = 10
Level = tuple[str, str]
"""(price, volume) as received."""


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum_string(asks: Iterable[Level], bids: Iterable[Level]) -> str:
    """What the CRC is taken of: the given levels (best first, at most 10 a side used)."""
    parts = []
    for side in (asks, bids):
        for n, (price, volume) in enumerate(side):
            if n == CHECKSUM_LEVELS:
                break
            parts.append(_digits(price))
            parts.append(_digits(volume))
    return "".join(parts)


def checksum(asks: Iterable[Level], bids: Iterable[Level]) -> int:
    """Kraken's checksum of a book whose asks (lowest first) and bids (highest first) these
    are."""
    return zlib.crc32(checksum_string(asks, bids).encode("ascii")) & 0xFFFFFFFF


class Side:
    """One side of a StringBook: price -> (price, volume) strings, in price order."""

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.levels: dict[float, Level] = {}
        self._prices: list[float] = []  # ascending, always

    def __len__(self) -> int:
        return len(self.levels)

    def set(self, price: float, level: Level | None) -> None:
        """The level at `price` (None: removed)."""
        if level is None:
            if self.levels.pop(price, None) is not None:
                del self._prices[bisect_left(self._prices, price)]
            return
        if price not in self.levels:
            insort(self._prices, price)
        self.levels[price] = level

    def truncate(self, depth: int) -> list[float]:
        """Drop the levels past the best `depth`; the prices dropped."""
        extra = len(self._prices) - depth
        if extra <= 0:
            return []
        if self.descending:  # the worst bids are the lowest
            dropped, self._prices = self._prices[:extra], self._prices[extra:]
        else:
            dropped, self._prices = self._prices[-extra:], self._prices[:-extra]
        for price in dropped:
            del self.levels[price]
        return dropped

    def top(self, n: int | None = None) -> list[Level]:
        """The best `n` levels' strings (all if None), best first."""
        prices = self._prices
        if self.descending:
            chosen = prices[::-1] if n is None else prices[:-n - 1:-1] if n > 0 else []
        else:
            chosen = prices if n is None else prices[:max(n, 0)]
        return [self.levels[price] for price in chosen]

    def best(self) -> float | None:
        if not self._prices:
            return None
        return self._prices[-1] if self.descending else self._prices[0]


class StringBook:
    """A book at a subscribed depth, its levels kept as received."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.asks = Side(descending=False)
        self.bids = Side(descending=True)

    def checksum(self) -> int:
        return checksum(self.asks.top(CHECKSUM_LEVELS), self.bids.top(CHECKSUM_LEVELS))

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask
