"""A stocks market in Polygon's wire format, for the simulator (pure, no I/O).

Each symbol's NBBO is the shared market's quote around its fair price (handlers/common/market.py:
the same path at every provider); quotes and trades come at `rate` messages per second per
symbol, about two quotes per trade, with exchanges, sizes and conditions from the feed's own
random generator. Trades fill per-second and per-minute windows, and each window that saw trades
is published as an aggregate (`A`, `AM`) once the clock leaves it, as Polygon does. Sequence
numbers `q` increase per symbol but skip, like the real feed's.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from tickmesh.handlers.common.market import fair_price, quote

EXCHANGES = (4, 8, 9, 10, 11, 12, 15, 19, 21)  # Polygon exchange ids: 4 FINRA TRF, 12 Nasdaq...
ODD_LOT = 37  # trade condition: odd lot
ISO = 14  # trade condition: intermarket sweep
TRADE_SHARE = 1 / 3
WINDOWS = (("A", 1_000), ("AM", 60_000))  # aggregate channel, window length in ms


@dataclass
class _Window:
    """One aggregate window's running totals."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: int = 0
    notional: float = 0.0
    trades: int = 0

    def add(self, price: float, size: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.notional += price * size
        self.trades += 1


@dataclass
class _Ticker:
    symbol: str
    tape: int
    seq: int = 0
    trade_id: int = 0
    budget: float = 0.0
    day_volume: int = 0
    day_notional: float = 0.0
    day_open: float = 0.0
    windows: dict[str, _Window] = field(default_factory=dict)


class RandomFeed:
    """`advance(now_ms)` returns the messages that happened since the last call."""

    def __init__(self, symbols: list[str], rate: float, seed: int | None = None) -> None:
        self.rate = rate
        self._rng = random.Random(seed)
        self._last_ms: int | None = None
        self._tickers = [self._ticker(symbol) for symbol in symbols]

    def _ticker(self, symbol: str) -> _Ticker:
        return _Ticker(symbol, tape=1 + zlib.crc32(symbol.encode()) % 3)

    def advance(self, now_ms: int) -> list[dict[str, Any]]:
        elapsed = 0 if self._last_ms is None else max(0, now_ms - self._last_ms)
        self._last_ms = now_ms
        out: list[dict[str, Any]] = []
        for ticker in self._tickers:
            out.extend(self._closed_windows(ticker, now_ms))
            ticker.budget += self.rate * elapsed / 1000
            while ticker.budget >= 1:
                ticker.budget -= 1
                out.append(self._next_message(ticker, now_ms))
        return out

    def _next_message(self, ticker: _Ticker, now_ms: int) -> dict[str, Any]:
        ticker.seq += self._rng.randint(1, 4)
        if self._rng.random() < TRADE_SHARE:
            return self._trade(ticker, now_ms)
        return self._quote(ticker, now_ms)

    def _spread(self, ticker: _Ticker, now_ms: int) -> tuple[float, float]:
        return quote(fair_price(ticker.symbol, now_ms * 1_000_000))

    def _quote(self, ticker: _Ticker, now_ms: int) -> dict[str, Any]:
        bid, ask = self._spread(ticker, now_ms)
        rng = self._rng
        return {
            "ev": "Q", "sym": ticker.symbol, "bx": rng.choice(EXCHANGES), "bp": bid,
            "bs": rng.randint(1, 20), "ax": rng.choice(EXCHANGES), "ap": ask,
            "as": rng.randint(1, 20), "c": 0, "t": now_ms, "q": ticker.seq, "z": ticker.tape,
        }

    def _trade(self, ticker: _Ticker, now_ms: int) -> dict[str, Any]:
        rng = self._rng
        price = rng.choice(self._spread(ticker, now_ms))
        size = rng.choice((rng.randint(1, 99), 100 * rng.randint(1, 10)))
        conditions = [ODD_LOT] if size < 100 else ([ISO] if rng.random() < 0.1 else [])
        ticker.trade_id += 1
        self._record(ticker, now_ms, price, size)
        message = {
            "ev": "T", "sym": ticker.symbol, "x": rng.choice(EXCHANGES),
            "i": str(ticker.trade_id), "z": ticker.tape, "p": price, "s": size,
            "t": now_ms, "q": ticker.seq,
        }
        if conditions:  # like the real feed, `c` is left out when there are none
            message["c"] = conditions
        return message

    def _record(self, ticker: _Ticker, now_ms: int, price: float, size: int) -> None:
        ticker.day_open = ticker.day_open or price
        ticker.day_volume += size
        ticker.day_notional += price * size
        for channel, length in WINDOWS:
            window = ticker.windows.get(channel)
            if window is None:
                start = now_ms - now_ms % length
                window = ticker.windows[channel] = _Window(start, price, price, price, price)
            window.add(price, size)

    def _closed_windows(self, ticker: _Ticker, now_ms: int) -> list[dict[str, Any]]:
        closed = []
        for channel, length in WINDOWS:
            window = ticker.windows.get(channel)
            if window is not None and now_ms >= window.start + length:
                del ticker.windows[channel]
                closed.append(self._aggregate(ticker, channel, window, length))
        return closed

    def _aggregate(self, ticker: _Ticker, channel: str, w: _Window, length: int) -> dict[str, Any]:
        return {
            "ev": channel, "sym": ticker.symbol, "v": w.volume, "av": ticker.day_volume,
            "op": ticker.day_open, "vw": round(w.notional / w.volume, 4), "o": w.open,
            "c": w.close, "h": w.high, "l": w.low,
            "a": round(ticker.day_notional / ticker.day_volume, 4),
            "z": round(w.volume / w.trades), "s": w.start, "e": w.start + length,
        }
