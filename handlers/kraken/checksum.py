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
as they came, ordered by the price's value; each side keeps its top 10's digits as levels
change (a change below the top 10 costs none), and the CRC is taken of them afresh every time
`checksum()` is asked. `checksum()` of a list of levels is the same computed from scratch.
"""

from __future__ import annotations

import itertools
import zlib
from bisect import bisect_left
from typing import Iterable

CHECKSUM_LEVELS = 10
Level = tuple[str, str]
"""(price, volume) as received."""


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def _level_digits(level: Level) -> str:
    return _digits(level[0]) + _digits(level[1])


def checksum_string(asks: Iterable[Level], bids: Iterable[Level]) -> str:
    """What the CRC is taken of: the given levels (best first, at most 10 a side used)."""
    return "".join(_level_digits(level) for side in (asks, bids)
                   for level in itertools.islice(side, CHECKSUM_LEVELS))


def checksum(asks: Iterable[Level], bids: Iterable[Level]) -> int:
    """Kraken's checksum of a book whose asks (lowest first) and bids (highest first) these
    are."""
    return _crc(checksum_string(asks, bids))


def _crc(text: str) -> int:
    """CRC32 of the checksum string, as an unsigned 32-bit integer."""
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF


class Side:
    """One side of a StringBook: price -> (price, volume) strings, in price order, and the
    checksum's digits of its best CHECKSUM_LEVELS levels, kept up to date as levels change.

    The prices are kept sorted best first (as `_keys`: the price for asks, its negation for
    bids), so that a level's rank is where bisect finds it; only a change at a rank below
    CHECKSUM_LEVELS touches `_top`, each entry of which is one level's price digits then its
    volume digits. At depth 1000 most levels are below the top 10, and an update there costs
    no digits at all; one in the top 10 costs one level's."""

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.levels: dict[float, Level] = {}
        self._keys: list[float] = []  # best first: prices ascending, or negated bids
        self._top: list[str] = []  # _level_digits of the levels at _keys[:CHECKSUM_LEVELS]

    def __len__(self) -> int:
        return len(self.levels)

    def set(self, price: float, level: Level | None) -> None:
        """The level at `price` (None: removed)."""
        key = -price if self.descending else price
        if level is None:
            if self.levels.pop(price, None) is not None:
                self._removed(key)
        elif price in self.levels:
            self.levels[price] = level
            keys = self._keys
            if len(keys) <= CHECKSUM_LEVELS or key <= keys[CHECKSUM_LEVELS - 1]:
                self._top[bisect_left(keys, key)] = _level_digits(level)
        else:
            self.levels[price] = level
            self._added(key, level)

    def replace(self, levels: dict[float, Level | None]) -> None:
        """The whole side anew: each price's level (None: none at that price)."""
        self.levels = {price: level for price, level in levels.items() if level is not None}
        self._keys = sorted(-price for price in self.levels) if self.descending \
            else sorted(self.levels)
        self._top = [_level_digits(level) for level in self.top(CHECKSUM_LEVELS)]

    def _added(self, key: float, level: Level) -> None:
        rank = bisect_left(self._keys, key)
        self._keys.insert(rank, key)
        if rank < CHECKSUM_LEVELS:
            self._top.insert(rank, _level_digits(level))
            del self._top[CHECKSUM_LEVELS:]

    def _removed(self, key: float) -> None:
        keys = self._keys
        rank = bisect_left(keys, key)
        del keys[rank]
        if rank < CHECKSUM_LEVELS:
            del self._top[rank]
            if len(keys) >= CHECKSUM_LEVELS:  # the 11th best is the 10th now
                tenth = self._price(keys[CHECKSUM_LEVELS - 1])
                self._top.append(_level_digits(self.levels[tenth]))

    def _price(self, key: float) -> float:
        return -key if self.descending else key

    def truncate(self, depth: int) -> list[float]:
        """Drop the levels past the best `depth`; the prices dropped (best first)."""
        if len(self._keys) <= depth:
            return []
        dropped = [self._price(key) for key in self._keys[depth:]]
        del self._keys[depth:], self._top[depth:]
        for price in dropped:
            del self.levels[price]
        return dropped

    def prices(self, n: int | None = None) -> list[float]:
        """The best `n` prices (all if None), best first."""
        keys = self._keys if n is None else self._keys[:max(n, 0)]
        return [-key for key in keys] if self.descending else keys[:]

    def top(self, n: int | None = None) -> list[Level]:
        """The best `n` levels' strings (all if None), best first."""
        levels = self.levels
        return [levels[price] for price in self.prices(n)]

    def best(self) -> float | None:
        if not self._keys:
            return None
        return -self._keys[0] if self.descending else self._keys[0]

    def digits(self) -> str:
        """The checksum's string of this side: its best CHECKSUM_LEVELS levels' digits."""
        return "".join(self._top)


class StringBook:
    """A book at a subscribed depth, its levels kept as received."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.asks = Side(descending=False)
        self.bids = Side(descending=True)

    def checksum(self) -> int:
        """Kraken's checksum of the book as it is (`checksum` of its top levels, from the
        digits its sides keep)."""
        return _crc(self.asks.digits() + self.bids.digits())

    def crossed(self) -> bool:
        bid, ask = self.bids.best(), self.asks.best()
        return bid is not None and ask is not None and bid >= ask
