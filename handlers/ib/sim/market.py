"""One simulated stock, sans-I/O: a position-indexed book that follows the shared market's fair
price (handlers/common/market.py), as TWS keeps it (rows best first, `rows` per side).

Each `step()` reads the fair price at the clock's time and changes the book the way a market
does: a touch the fair price has moved through trades, and the rest of what is left on the
wrong side of it is cancelled; otherwise a trade takes liquidity at the touch, a new best price
appears inside the spread, a size changes, or a deeper row is cancelled. Then each side is put
back in shape: a touch more than SLACK_TICKS behind the quote a market maker would show
(handlers.common.market.quote) gets a new best row at that quote, rows drifted far behind the
touch (MAX_SPAN_TICKS_PER_ROW) are cancelled, and the side is refilled to `rows` rows, in its
gaps nearest the touch first. So the best bid stays below the fair price and the best ask above
it, each within a few ticks of the quote, however long the market runs.

`step()` returns the row operations in the order they were applied (each with the side's rows
right after it, which a narrower view of the book needs), the trade if one happened, and the
top of the book before and after.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

from tickmesh.bus.events import PriceLevel
from tickmesh.handlers.common.market import TICK, fair_price, quote
from tickmesh.handlers.ib.depth import ASK, BID, DELETE, INSERT, UPDATE, PositionSide

EXCHANGES = ("NASDAQ", "ARCA", "NYSE", "IEX", "BATS")
SLACK_TICKS = 2
"""How far behind the quote a side's best row may fall before a new one is placed at it."""
MAX_SPAN_TICKS_PER_ROW = 5
"""A row more than this many ticks per row of the book behind the touch is cancelled."""
AWAY = {BID: -1, ASK: 1}
"""The direction of worse prices on each side."""


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
    """`clock()` is the time in Unix nanoseconds; `seed` picks the shared market's path."""

    def __init__(self, symbol: str, rows: int, rng: random.Random,
                 clock: Callable[[], int] = time.time_ns, seed: int = 0) -> None:
        if rows < 2:
            raise ValueError("a simulated book needs at least 2 rows per side")
        self.symbol = symbol
        self.rows = rows
        self.rng = rng
        self.clock = clock
        self.seed = seed
        self.volume = 0.0
        self.sides = {BID: PositionSide(), ASK: PositionSide()}
        self._ops: list[DepthOp] = []
        self._quote: dict[int, float] = {}
        self._max_span = MAX_SPAN_TICKS_PER_ROW * rows
        self._move()
        self._restore()
        self._ops.clear()

    @property
    def top(self) -> Top:
        (bid, bid_size), (ask, ask_size) = self.sides[BID].rows[0], self.sides[ASK].rows[0]
        return Top(bid, bid_size, ask, ask_size)

    def step(self) -> Step:
        before = self.top
        self._move()
        trade = self._cross()
        self._cancel_stale()
        if trade is None:
            trade = self._random_change()
        self._restore()
        ops, self._ops = self._ops, []
        return Step(ops, trade, before, self.top)

    # --- the fair price moved -----------------------------------------------------------------

    def _move(self) -> None:
        """The fair price now, and the quote a market maker would show around it."""
        self.fair = fair_price(self.symbol, self.clock(), self.seed)
        self._quote[BID], self._quote[ASK] = quote(self.fair)

    def _stale(self, side: int, price: float) -> bool:
        """At or past the fair price: a bid at or above it, an ask at or below it."""
        return (price - self.fair) * AWAY[side] <= 0

    def _cross(self) -> Print | None:
        """A touch the fair price moved through is taken by a market order."""
        for side in (ASK, BID):
            if self._stale(side, self.sides[side].rows[0][0]):
                return self._take(side)
        return None

    def _cancel_stale(self) -> None:
        for side in (BID, ASK):
            rows = self.sides[side].rows
            while rows and self._stale(side, rows[0][0]):
                self._delete(side, 0)

    # --- what can happen in one step ----------------------------------------------------------

    def _random_change(self) -> Print | None:
        choice = self.rng.random()
        side = self.rng.choice((BID, ASK))
        rows = self.sides[side].rows
        if choice < 0.3:
            return self._take(side)
        if choice < 0.5:
            self._improve(side)
        elif choice < 0.8:
            position = self.rng.randrange(len(rows))
            self._apply(side, position, UPDATE, rows[position][0], self._lot())
        else:
            self._delete(side, self.rng.randrange(1, len(rows)))
        return None

    def _take(self, side: int) -> Print:
        """A market order takes some or all of the best row of `side`."""
        price, size = self.sides[side].rows[0]
        taken = min(size, self._lot())
        if taken == size:
            self._delete(side, 0)
        else:
            self._apply(side, 0, UPDATE, price, size - taken)
        self.volume += taken
        return Print(price, taken, self.rng.choice(EXCHANGES))

    def _improve(self, side: int) -> None:
        """A new best price one tick inside the spread, if not past the quote; the deepest row
        falls off."""
        rows = self.sides[side].rows
        better = _price(rows[0][0] - AWAY[side] * TICK)
        if self._ticks_behind(side, better, self._quote[side]) >= 0:
            self._delete(side, len(rows) - 1)
            self._apply(side, 0, INSERT, better, self._lot())

    # --- back in shape ------------------------------------------------------------------------

    def _restore(self) -> None:
        for side in (BID, ASK):
            rows = self.sides[side].rows
            target = self._quote[side]
            if not rows or self._ticks_behind(side, rows[0][0], target) > SLACK_TICKS:
                if len(rows) >= self.rows:
                    self._delete(side, len(rows) - 1)
                self._apply(side, 0, INSERT, target, self._lot())
            while self._ticks_behind(side, rows[-1][0], rows[0][0]) > self._max_span:
                self._delete(side, len(rows) - 1)
            while len(rows) < self.rows:
                self._refill(side)

    def _refill(self, side: int) -> None:
        """One more row: one tick behind the first row that has a gap behind it, or behind the
        deepest."""
        rows = self.sides[side].rows
        position = next((i + 1 for i in range(len(rows) - 1)
                         if self._ticks_behind(side, rows[i + 1][0], rows[i][0]) > 1), len(rows))
        self._apply(side, position, INSERT, rows[position - 1][0] + AWAY[side] * TICK, self._lot())

    @staticmethod
    def _ticks_behind(side: int, price: float, reference: float) -> int:
        """How many ticks `price` is behind (worse than) `reference` on `side`."""
        return round((price - reference) / TICK) * AWAY[side]

    def _delete(self, side: int, position: int) -> None:
        self._apply(side, position, DELETE, self.sides[side].rows[position][0], 0.0)

    def _apply(self, side: int, position: int, operation: int, price: float, size: float) -> None:
        price = _price(price)
        self.sides[side].apply(position, operation, price, size)
        self._ops.append(DepthOp(side, position, operation, price, size,
                                 tuple(self.sides[side].rows)))

    def _lot(self) -> float:
        return float(self.rng.randint(1, 10) * 100)
