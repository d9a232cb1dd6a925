"""The one market every simulator quotes: a symbol's fair price as a pure function of the symbol
and the wall-clock time, so that the same symbol follows the same price path at every provider
and in every process, with nothing shared but this code. Pure: no I/O, no clock of its own.

The model, per symbol (and `seed`, 0 for the simulators: any other number is another market):
- A base price: plausible levels for a few well-known names, otherwise 20.00 to 499.99 from the
  CRC-32 of the symbol.
- A path over each UTC day on per-minute anchors: 1440 log-returns, normal with a standard
  deviation of DAILY_VOLATILITY / sqrt(1440) (2% a day, ~0.05% a minute), drawn from a
  `random.Random` seeded by the symbol, the day and the seed. Their running sum, less its share
  of the day's total (a Brownian bridge), starts and ends every day at the base price: the path
  is continuous across midnight and never wanders off over weeks of uptime.
- Inside each minute: 60 per-second steps with the per-minute deviation / sqrt(60), seeded by
  the minute too and pinned to zero at both ends of the minute (again a bridge), added to the
  straight line between the minute's anchors; linear between seconds. So the price moves at
  every tick, and two processes that ask about the same nanosecond get the same number.

Crypto pairs quoted in a dollar (BASE-USD, BASE-USDT, BASE-USDC) share their base asset's
path: BTC-USD at Coinbase and BTC-USDT at Binance move together, as arbitrage keeps them.

`quote(price)` is a realistic touch around a fair price: HALF_SPREAD_BPS of it on each side,
at least one tick, rounded outwards to the tick (bid below the price, ask above it).
"""

from __future__ import annotations

import math
import random
import zlib
from functools import lru_cache

TICK = 0.01
DAILY_VOLATILITY = 0.02
MINUTES_PER_DAY = 24 * 60
MINUTE_VOLATILITY = DAILY_VOLATILITY / math.sqrt(MINUTES_PER_DAY)
SECOND_VOLATILITY = MINUTE_VOLATILITY / math.sqrt(60)
HALF_SPREAD_BPS = 1.0
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_DAY = MINUTES_PER_DAY * NS_PER_MINUTE

KNOWN_PRICES = {
    "AAPL": 190.0, "MSFT": 410.0, "AMZN": 180.0, "NVDA": 120.0, "TSLA": 250.0, "GOOGL": 170.0,
    "META": 480.0, "BRK.B": 410.0, "SPY": 520.0, "QQQ": 440.0, "AMD": 160.0, "IBM": 180.0,
    "BTC": 90_000.0, "ETH": 3_000.0, "SOL": 150.0, "LTC": 80.0, "LINK": 15.0, "AVAX": 30.0,
}
DOLLARS = ("USD", "USDT", "USDC")


def path_symbol(symbol: str) -> str:
    """Whose path `symbol` follows: its base asset for a crypto pair quoted in a dollar."""
    base, dash, quote = symbol.partition("-")
    return base if dash and quote in DOLLARS else symbol


def base_price(symbol: str) -> float:
    """Where the symbol's path starts and ends every UTC day."""
    if symbol in KNOWN_PRICES:
        return KNOWN_PRICES[symbol]
    return 20.0 + zlib.crc32(symbol.encode()) % 48_000 / 100


def fair_price(symbol: str, t_ns: int, seed: int = 0) -> float:
    """The symbol's fair price at `t_ns` nanoseconds since the Unix epoch (unrounded)."""
    symbol = path_symbol(symbol)
    day, in_day = divmod(t_ns, NS_PER_DAY)
    minute, in_minute = divmod(in_day, NS_PER_MINUTE)
    second, in_second = divmod(in_minute, NS_PER_SECOND)
    anchors = _day_anchors(symbol, seed, day)
    wiggle = _minute_wiggle(symbol, seed, day, minute)
    line = anchors[minute] + (anchors[minute + 1] - anchors[minute]) * in_minute / NS_PER_MINUTE
    step = wiggle[second] + (wiggle[second + 1] - wiggle[second]) * in_second / NS_PER_SECOND
    return base_price(symbol) * math.exp(line + step)


def half_spread(price: float) -> float:
    """Half a realistic quoted spread around `price`: HALF_SPREAD_BPS of it, at least a tick."""
    return max(TICK, price * HALF_SPREAD_BPS / 10_000)


def quote(price: float) -> tuple[float, float]:
    """(bid, ask) around `price`, half a spread off each side, rounded outwards to the tick."""
    half = half_spread(price)
    return floor_tick(price - half), ceil_tick(price + half)


def floor_tick(price: float) -> float:
    return round(math.floor(round(price / TICK, 6)) * TICK, 2)


def ceil_tick(price: float) -> float:
    return round(math.ceil(round(price / TICK, 6)) * TICK, 2)


@lru_cache(maxsize=256)
def _day_anchors(symbol: str, seed: int, day: int) -> tuple[float, ...]:
    """The log-price offsets from the base at each minute of `day`, 0 at both ends."""
    return _bridge(random.Random(f"{symbol}|{seed}|{day}"), MINUTES_PER_DAY, MINUTE_VOLATILITY)


@lru_cache(maxsize=1024)
def _minute_wiggle(symbol: str, seed: int, day: int, minute: int) -> tuple[float, ...]:
    """The log-price offsets from the minute's straight line at each of its seconds."""
    return _bridge(random.Random(f"{symbol}|{seed}|{day}|{minute}"), 60, SECOND_VOLATILITY)


def _bridge(rng: random.Random, steps: int, volatility: float) -> tuple[float, ...]:
    """A random walk of `steps` normal steps, less its final value spread evenly over the steps:
    `steps + 1` points, the first and the last 0."""
    walk = [0.0]
    for _ in range(steps):
        walk.append(walk[-1] + rng.gauss(0.0, volatility))
    drift = walk[-1] / steps
    return tuple(point - drift * i for i, point in enumerate(walk))
