"""One symbol's L2 order book as a handler keeps it to validate the provider's depth and to
publish snapshots (Coinbase; Binance until a symbol is in sync): levels by price with absolute
sizes (0 removes), the sorted views a BookSnapshot needs, and the crossed check. Pure. (The
order-book builder has its own, faster one for reading the top at every change:
consumers/books/orderbook.py.)"""

from __future__ import annotations

from typing import Iterable

Levels = list[tuple[float, float]]


class Book:
    def __init__(self, bids: Iterable[tuple[float, float]] = (),
                 asks: Iterable[tuple[float, float]] = ()) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.apply(bids, asks)

    def apply(self, bids: Iterable[tuple[float, float]],
              asks: Iterable[tuple[float, float]]) -> None:
        """Set each level to its new absolute size; size 0 removes it (absent or not)."""
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def sorted_bids(self) -> Levels:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> Levels:
        return sorted(self.asks.items())

    def crossed(self) -> bool:
        """The best bid is at or above the best ask."""
        return bool(self.bids and self.asks) and max(self.bids) >= min(self.asks)
