"""IB market depth, sans-I/O: position-indexed in, price levels out.

TWS does not send price levels: it sends operations on *rows* — insert a row at a position
(the rows below shift down), update the row at a position (its price may change too), delete
the row at a position (the rows below shift up). `PositionSide` is one side of such a book, as
TWS keeps it. `DepthBook` applies the operations and reports the book the way every other
provider does: price levels with absolute sizes, as a snapshot or as the levels that changed.
Rows that share a price (SMART depth lists one row per exchange) add up to one level.
"""

from __future__ import annotations

from tickmesh.bus.events import PriceLevel

INSERT, UPDATE, DELETE = 0, 1, 2
ASK, BID = 0, 1


class DepthError(ValueError):
    """An operation that does not fit the book (a position past its end, an unknown code)."""


class PositionSide:
    """One side's rows, best first, addressed by position."""

    def __init__(self) -> None:
        self.rows: list[PriceLevel] = []

    def apply(self, position: int, operation: int, price: float, size: float) -> set[float]:
        """Apply one operation; returns the prices whose total size may have changed."""
        rows = self.rows
        if operation == INSERT:
            if not 0 <= position <= len(rows):
                raise DepthError(f"insert at position {position} of {len(rows)} rows")
            rows.insert(position, (price, size))
            return {price}
        if not 0 <= position < len(rows):
            raise DepthError(f"operation {operation} at position {position} of {len(rows)} rows")
        old_price = rows[position][0]
        if operation == UPDATE:
            rows[position] = (price, size)
            return {old_price, price}
        if operation == DELETE:
            del rows[position]
            return {old_price}
        raise DepthError(f"unknown depth operation {operation}")

    def size_at(self, price: float) -> float:
        return sum(size for row_price, size in self.rows if row_price == price)

    def levels(self, prices: set[float] | None = None) -> dict[float, float]:
        """Total size per price, over all rows or only `prices` (0.0 where none is left)."""
        if prices is None:
            prices = {price for price, _ in self.rows}
        return {price: self.size_at(price) for price in prices}


class DepthBook:
    """One symbol's depth: apply TWS operations; read a snapshot, or the delta since the last
    read."""

    def __init__(self) -> None:
        self.sides = {BID: PositionSide(), ASK: PositionSide()}
        self._changed: dict[int, set[float]] = {BID: set(), ASK: set()}

    def apply(self, side: int, position: int, operation: int, price: float, size: float) -> None:
        if side not in self.sides:
            raise DepthError(f"unknown depth side {side}")
        self._changed[side] |= self.sides[side].apply(position, operation, price, size)

    def clear(self) -> None:
        for side in self.sides.values():
            side.rows.clear()
        self._forget_changes()

    def snapshot(self) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """(bids, asks): the whole book, best first. Starts a new delta."""
        self._forget_changes()
        return self._levels(BID), self._levels(ASK)

    def delta(self) -> tuple[list[PriceLevel], list[PriceLevel]]:
        """(bids, asks): each level changed since the last read, with its new total size
        (0.0: the level is gone), best first."""
        bids, asks = self._levels(BID, self._changed[BID]), self._levels(ASK, self._changed[ASK])
        self._forget_changes()
        return bids, asks

    def _forget_changes(self) -> None:
        for changed in self._changed.values():
            changed.clear()

    def _levels(self, side: int, prices: set[float] | None = None) -> list[PriceLevel]:
        return sorted(self.sides[side].levels(prices).items(), reverse=side == BID)
