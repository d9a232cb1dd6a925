"""Synthetic market data for the simulator: a random-walk mid per symbol with spreads and trade
sizes, and the benchmark's blast frames. Pure: the simulator decides when to send what.

Every message the simulator may send is an `Item`: its channel and symbol (for subscription
filtering) and what to encode for each encoding (one wire struct serves both; a replayed
message carries its recorded bytes per encoding).
"""

from __future__ import annotations

import math
import random
from typing import Any, NamedTuple, Sequence

from msgspec.msgpack import Ext

from handlers.alpaca import wire
from handlers.alpaca.wire import QuoteMessage, TradeMessage

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "GOOGL", "META", "BRK.B")
BLAST_SYMBOLS = tuple(f"S{i:03d}" for i in range(100))
BLAST_TRADES_PER_FRAME = 10
EXCHANGES = "VQNPZK"
TAPES = {"A": 0.3, "B": 0.2, "C": 0.5}
TRADE_SHARE = 0.3
"""Of all messages, this share are trades, the rest quotes."""


class Item(NamedTuple):
    channel: str
    symbol: str
    json: Any
    msgpack: Any

    def payload(self, encoding: str) -> Any:
        return self.msgpack if encoding == wire.MSGPACK else self.json


class Market:
    def __init__(self, symbols: Sequence[str], seed: int | None = None) -> None:
        if not symbols:
            raise ValueError("the market needs at least one symbol")
        self._rng = random.Random(seed)
        self.symbols = list(symbols)
        self.mids = {s: round(self._rng.uniform(20, 500), 2) for s in self.symbols}
        self._tapes = {s: self._rng.choices(list(TAPES), list(TAPES.values()))[0] for s in symbols}
        self._trade_id = 0
        self._last_ns = 0

    def batch(self, count: int, now_ns: int) -> list[Item]:
        """The next `count` messages, stamped from `now_ns` on (strictly increasing)."""
        return [self.next(now_ns) for _ in range(count)]

    def next(self, now_ns: int) -> Item:
        rng = self._rng
        symbol = rng.choice(self.symbols)
        mid = self.mids[symbol] * math.exp(rng.gauss(0, 4e-4))
        mid = self.mids[symbol] = max(0.05, round(mid, 4))
        half_spread = max(0.005, round(mid * rng.uniform(5e-5, 3e-4), 3))
        self._last_ns = max(now_ns, self._last_ns + 1)
        stamp = wire.timestamp_ext(self._last_ns)
        if rng.random() < TRADE_SHARE:
            trade = self._trade(symbol, mid, half_spread, stamp)
            return Item("trades", symbol, trade, trade)
        quote = self._quote(symbol, mid, half_spread, stamp)
        return Item("quotes", symbol, quote, quote)

    def _trade(self, symbol: str, mid: float, half_spread: float, stamp: Ext) -> TradeMessage:
        rng = self._rng
        self._trade_id += 1
        size = rng.choice((1, 5, 10, 50, 100, 100, 100, 200, 300, 500))
        return TradeMessage(
            symbol=symbol, trade_id=self._trade_id, exchange=rng.choice(EXCHANGES),
            price=round(mid + rng.choice((-half_spread, half_spread)), 2), size=size,
            time=stamp, conditions=["@", "I"] if size < 100 else ["@"], tape=self._tapes[symbol],
        )

    def _quote(self, symbol: str, mid: float, half_spread: float, stamp: Ext) -> QuoteMessage:
        rng = self._rng
        return QuoteMessage(
            symbol=symbol, bid_exchange=rng.choice(EXCHANGES), bid_size=rng.randint(1, 20),
            bid_price=round(mid - half_spread, 2), ask_exchange=rng.choice(EXCHANGES),
            ask_price=round(mid + half_spread, 2), ask_size=rng.randint(1, 20),
            time=stamp, conditions=["R"], tape=self._tapes[symbol],
        )


def build_blast_frames(n_frames: int, symbols: Sequence[str] = BLAST_SYMBOLS,
                       encoding: str = wire.MSGPACK, seed: int = 1) -> list[bytes]:
    """`n_frames` encoded frames of BLAST_TRADES_PER_FRAME trades each over `symbols`, with
    distinct increasing ns timestamps: the benchmark's input, built before the clock starts."""
    rng = random.Random(seed)
    start_ns = 1_700_000_000 * wire.NS
    frames = []
    for f in range(n_frames):
        trades = []
        for k in range(BLAST_TRADES_PER_FRAME):
            n = f * BLAST_TRADES_PER_FRAME + k
            trades.append(TradeMessage(
                symbol=rng.choice(symbols), trade_id=n + 1, exchange="V",
                price=round(100 + rng.random(), 2), size=rng.randint(1, 500),
                time=wire.timestamp_ext(start_ns + n * 1_000 + rng.randint(0, 999)),
                conditions=["@"], tape="C",
            ))
        frames.append(wire.encode_frame(trades, encoding))
    return frames
