"""One simulated stock, sans-I/O: a random-walk fair price and a position-indexed book that
follows it, as TWS keeps it (rows best first, at most `rows` per side).

Each `step()` moves the fair price and changes the book the way a market does: a trade takes
liquidity at the touch, a new best price appears inside the spread, a size changes, a deeper
row is cancelled. It returns the row operations in the order they were applied (each with the
side's rows right after it, which a narrower view of the book needs), the trade if one
happened, and the top of the book before and after.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bus.events import PriceLevel
from handlers.ib.depth import ASK, BID, DELETE, INSERT, UPDATE, PositionSide

TICK = 0.01
EXCHANGES = ("NASDAQ", "ARCA", "NYSE", "IEX", "BATS")


def _price(value: float) -> float:
    return round(value, 2)


@dataclass(frozen=True)
class DepthOp:
    side: int
    position: int
    operation: int
    price: float
    size: float
    rows_after: tuple[PriceLevel, ...]


@dataclass(frozen=True)
class Print:
    price: float
    size: float
    exchange: str


@dataclass(frozen=True)
class Top:
    bid: float
    bid_size: float
    ask: float
    ask_size: float

    @property
    def midpoint(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class Step:
    ops: list[DepthOp]
    trade: Print | None
    before: Top
    after: Top


class Market:
    def __init__(self, symbol: str, rows: int, rng: random.Random, price: float = 100.0) -> None:
        if rows < 2:
            raise ValueError("a simulated book needs at least 2 rows per side")
        self.symbol = symbol
        self.rows = rows
        self.rng = rng
        self.fair = _price(price)
        self.volume = 0.0
        self.sides = {BID: PositionSide(), ASK: PositionSide()}
        self._ops: list[DepthOp] = []
        for side in (BID, ASK):
            for level in range(rows):
                away = (level + 1) * TICK
                self._apply(side, level, INSERT, price - away if side == BID else price + away,
                            self._lot())
        self._ops.clear()

    @property
    def top(self) -> Top:
        (bid, bid_size), (ask, ask_size) = self.sides[BID].rows[0], self.sides[ASK].rows[0]
        return Top(bid, bid_size, ask, ask_size)

    def step(self) -> Step:
        before = self.top
        self.fair = _price(self.fair + self.rng.gauss(0.0, TICK))
        if self.fair >= before.ask:
            trade = self._take(ASK)
        elif self.fair <= before.bid:
            trade = self._take(BID)
        else:
            trade = self._random_change(before)
        ops, self._ops = self._ops, []
        return Step(ops, trade, before, self.top)

    # --- what can happen in one step --------------------------------------------------------

    def _random_change(self, top: Top) -> Print | None:
        choice = self.rng.random()
        if choice < 0.3:
            return self._take(self.rng.choice((BID, ASK)))
        if choice < 0.5 and top.ask - top.bid > TICK * 1.5:
            self._improve(BID if self.fair - top.bid > top.ask - self.fair else ASK)
        elif choice < 0.8:
            side = self.rng.choice((BID, ASK))
            position = self.rng.randrange(self.rows)
            self._apply(side, position, UPDATE, self.sides[side].rows[position][0], self._lot())
        else:
            side = self.rng.choice((BID, ASK))
            self._delete(side, self.rng.randrange(1, self.rows))
            self._refill(side)
        return None

    def _take(self, side: int) -> Print:
        """A market order takes some or all of the best row of `side`."""
        price, size = self.sides[side].rows[0]
        taken = min(size, self._lot())
        if taken == size:
            self._delete(side, 0)
            self._refill(side)
        else:
            self._apply(side, 0, UPDATE, price, size - taken)
        self.volume += taken
        return Print(price, taken, self.rng.choice(EXCHANGES))

    def _improve(self, side: int) -> None:
        """A new best price one tick inside the spread; the deepest row falls off."""
        best = self.sides[side].rows[0][0]
        self._delete(side, self.rows - 1)
        self._apply(side, 0, INSERT, best + TICK if side == BID else best - TICK, self._lot())

    def _refill(self, side: int) -> None:
        """Keep `rows` rows: a new row one tick beyond the deepest."""
        rows = self.sides[side].rows
        deepest = rows[-1][0]
        self._apply(side, len(rows), INSERT, deepest - TICK if side == BID else deepest + TICK,
                    self._lot())

    def _delete(self, side: int, position: int) -> None:
        self._apply(side, position, DELETE, self.sides[side].rows[position][0], 0.0)

    def _apply(self, side: int, position: int, operation: int, price: float, size: float) -> None:
        price = _price(price)
        self.sides[side].apply(position, operation, price, size)
        self._ops.append(DepthOp(side, position, operation, price, size,
                                 tuple(self.sides[side].rows)))

    def _lot(self) -> float:
        return float(self.rng.randint(1, 10) * 100)
