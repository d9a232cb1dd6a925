"""Synthetic market data for the simulator: quotes and trades around the shared market's fair
price (handlers/common/market.py: the same path at every provider), with Alpaca's exchanges,
tapes, sizes and conditions from the simulator's own random generator; and the benchmark's blast
frames. Pure: the simulator decides when to send what, and at which time.

Every message the simulator may send is an `Item`: its channel and symbol (for subscription
filtering) and what to encode for each encoding (one wire struct serves both; a replayed
message carries its recorded bytes per encoding).
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple, Sequence

from msgspec.msgpack import Ext

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.common.market import TICK, fair_price, quote
from tickmesh.handlers.alpaca.wire import QuoteMessage, TradeMessage

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
        self._tapes = {s: self._rng.choices(list(TAPES), list(TAPES.values()))[0] for s in symbols}
        self._trade_id = 0
        self._last_ns = 0

    def batch(self, count: int, now_ns: int) -> list[Item]:
        """The next `count` messages, stamped from `now_ns` on (strictly increasing)."""
        return [self.next(now_ns) for _ in range(count)]

    def next(self, now_ns: int) -> Item:
        rng = self._rng
        symbol = rng.choice(self.symbols)
        self._last_ns = max(now_ns, self._last_ns + 1)
        bid, ask = quote(fair_price(symbol, self._last_ns))
        stamp = wire.timestamp_ext(self._last_ns)
        if rng.random() < TRADE_SHARE:
            trade = self._trade(symbol, rng.choice((bid, ask)), stamp)
            return Item("trades", symbol, trade, trade)
        message = self._quote(symbol, bid, ask, stamp)
        return Item("quotes", symbol, message, message)

    def _trade(self, symbol: str, price: float, stamp: Ext) -> TradeMessage:
        rng = self._rng
        self._trade_id += 1
        size = rng.choice((1, 5, 10, 50, 100, 100, 100, 200, 300, 500))
        return TradeMessage(
            symbol=symbol, trade_id=self._trade_id, exchange=rng.choice(EXCHANGES),
            price=price, size=size, time=stamp, conditions=["@", "I"] if size < 100 else ["@"],
            tape=self._tapes[symbol],
        )

    def _quote(self, symbol: str, bid: float, ask: float, stamp: Ext) -> QuoteMessage:
        """The best quote of one exchange: at the market's touch or a tick behind it."""
        rng = self._rng
        return QuoteMessage(
            symbol=symbol, bid_exchange=rng.choice(EXCHANGES), bid_size=rng.randint(1, 20),
            bid_price=round(bid - TICK * rng.randint(0, 1), 2), ask_exchange=rng.choice(EXCHANGES),
            ask_price=round(ask + TICK * rng.randint(0, 1), 2), ask_size=rng.randint(1, 20),
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
