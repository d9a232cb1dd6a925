"""The one market the simulators share (handlers/common/market.py): the same price path in every
process, realistic spreads at every provider, and an IB book that follows it however long it
runs; then the three simulators as real processes, quoting AAPL at the same price."""

from __future__ import annotations

import asyncio
import json
import math
import random
import subprocess
import sys
import time

import pytest
from ib_async import IB, Stock
from websockets.asyncio.client import ClientConnection, connect

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim.market import Market as AlpacaMarket
from tickmesh.handlers.common.market import (
    MINUTE_VOLATILITY, NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND, TICK, fair_price, half_spread,
    quote,
)
from tickmesh.handlers.ib.sim.market import Market as IbMarket
from tickmesh.handlers.polygon.sim.market import RandomFeed
from tests import simulators

NOON = 1_700_000_000 * NS_PER_SECOND // NS_PER_DAY * NS_PER_DAY + NS_PER_DAY // 2
"""A UTC noon (2023-11-14): any instant will do, this one keeps the tests reproducible."""
SYMBOLS = ("AAPL", "MSFT", "BRK.B", "S042", "ZZZZ")


def widest_spread(price: float) -> float:
    """The widest touch an IB book may show: the quote's own spread (two half spreads, each
    rounded out by up to a tick) and two ticks of slack per side."""
    return 2 * half_spread(price) + 2 * TICK + 4 * TICK + 1e-9


# --- the model ----------------------------------------------------------------------------------

def test_the_fair_price_is_the_same_in_another_process(spawn):
    instants = [NOON + k * 7_777_777_777 for k in range(5)] + [time.time_ns()]
    asks = [(symbol, t) for symbol in SYMBOLS for t in instants]
    code = ("import sys; from tickmesh.handlers.common.market import fair_price; "
            f"print([repr(fair_price(s, t)) for s, t in {asks!r}])")
    proc = spawn([sys.executable, "-c", code], env={"PYTHONHASHSEED": "12345"},
                 stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert eval(out) == [repr(fair_price(s, t)) for s, t in asks]


def test_the_path_is_continuous_and_moves_like_a_stock():
    for boundary in (NOON, NOON + NS_PER_MINUTE + NS_PER_SECOND, NOON + NS_PER_DAY // 2):
        before, after = fair_price("AAPL", boundary - 1), fair_price("AAPL", boundary)
        assert abs(after / before - 1) < 1e-9  # minute, second and midnight alike
    minutes = [fair_price("AAPL", NOON + m * NS_PER_MINUTE) for m in range(24 * 60)]
    returns = [math.log(b / a) for a, b in zip(minutes, minutes[1:])]
    sd = math.sqrt(sum(r * r for r in returns) / len(returns))
    assert 0.7 * MINUTE_VOLATILITY < sd < 1.3 * MINUTE_VOLATILITY
    assert 150 < min(minutes) and max(minutes) < 250  # AAPL stays AAPL-like
    seconds = [fair_price("AAPL", NOON + s * NS_PER_SECOND) for s in range(600)]
    assert len(set(seconds)) == len(seconds)  # it moves every second
    assert all(abs(b / a - 1) < 0.001 for a, b in zip(seconds, seconds[1:]))


def test_a_seed_is_another_market_and_symbols_differ():
    assert fair_price("AAPL", NOON, seed=1) != fair_price("AAPL", NOON)
    assert len({round(fair_price(s, NOON), 2) for s in SYMBOLS}) == len(SYMBOLS)
    assert all(20 <= fair_price(s, NOON) <= 600 for s in SYMBOLS)


@pytest.mark.parametrize("price", [1.0, 20.0, 99.995, 190.0, 410.0, 60_000.0])
def test_the_quote_straddles_the_price_on_ticks(price):
    bid, ask = quote(price)
    assert bid < price < ask
    assert round(bid / TICK, 6).is_integer() and round(ask / TICK, 6).is_integer()
    assert 2 * half_spread(price) <= ask - bid <= 2 * half_spread(price) + 2 * TICK + 1e-9
    assert ask - bid <= max(3 * TICK, price * 4e-4)


# --- each provider's market ---------------------------------------------------------------------

def test_alpaca_quotes_and_trades_around_the_fair_price():
    market = AlpacaMarket(["AAPL", "MSFT"], seed=3)
    items = market.batch(2000, NOON)
    for item in items:
        message = item.json
        fair = fair_price(item.symbol, wire.ext_to_ns(message.time))
        if item.channel == "quotes":
            assert message.bid_price < fair < message.ask_price
            assert message.ask_price - message.bid_price <= widest_spread(fair)
        else:
            assert abs(message.price - fair) <= half_spread(fair) + TICK
    assert {item.channel for item in items} == {"quotes", "trades"}


def test_polygon_quotes_and_trades_around_the_fair_price():
    feed = RandomFeed(["AAPL", "BRK.B"], rate=100, seed=3)
    feed.advance(NOON // 1_000_000)
    messages = feed.advance(NOON // 1_000_000 + 10_000)
    assert {m["ev"] for m in messages} >= {"Q", "T"}
    for m in messages:
        if m["ev"] not in ("Q", "T"):
            continue
        fair = fair_price(m["sym"], m["t"] * 1_000_000)
        if m["ev"] == "Q":
            assert m["bp"] < fair < m["ap"] and m["ap"] - m["bp"] <= widest_spread(fair)
        else:
            assert abs(m["p"] - fair) <= half_spread(fair) + TICK


def test_the_ib_book_keeps_a_tight_uncrossed_spread_however_long_it_runs():
    """100,000 steps a second apart (28 hours, through a UTC midnight): the old book's spread
    grew without bound (dollars wide after 20,000 steps)."""
    clock = iter(range(NOON, NOON + 100_001 * NS_PER_SECOND, NS_PER_SECOND)).__next__
    market = IbMarket("MSFT", rows=10, rng=random.Random(5), clock=clock)
    trades = widest = 0.0
    for _ in range(100_000):
        step = market.step()
        top = step.after
        assert top.bid < market.fair < top.ask
        widest = max(widest, (top.ask - top.bid) / widest_spread(market.fair))
        trades += step.trade is not None
    assert widest <= 1.0
    assert trades > 10_000
    for side in market.sides.values():
        prices = [price for price, _ in side.rows]
        assert len(prices) == 10 and len(set(prices)) == 10
        assert abs(prices[-1] - prices[0]) < 60 * TICK


def test_the_ib_book_catches_up_with_a_jump_of_the_clock():
    times = iter([NOON, NOON + NS_PER_SECOND, NOON + 6 * 3600 * NS_PER_SECOND])
    market = IbMarket("AAPL", rows=5, rng=random.Random(1), clock=lambda: next(times))
    market.step()
    step = market.step()  # six hours later, in one step
    assert step.after.bid < market.fair < step.after.ask
    assert step.after.ask - step.after.bid <= widest_spread(market.fair)
    assert abs(step.after.midpoint / step.before.midpoint - 1) > 1e-4


# --- the three simulators, live -----------------------------------------------------------------

WINDOW_S = 1.0
"""Quotes compared are received within this long of one another. The model moves a price by
~0.01% in a second (rarely 0.03%), so mids a window apart agree far inside the tolerance."""
MID_TOLERANCE = 0.002
MAX_SPREAD = 0.001


@pytest.mark.timeout(60)
def test_every_provider_quotes_aapl_at_the_same_price(spawn_child):
    alpaca, _ = simulators.start(spawn_child, "tickmesh.handlers.alpaca.sim.server", "alpaca-sim", None,
                                 {"symbols": ["AAPL", "MSFT"], "rate": 200})
    polygon, _ = simulators.start(spawn_child, "tickmesh.handlers.polygon.sim.server", "polygon-sim", None,
                                  {"symbols": ["AAPL", "MSFT"], "rate": 40})
    ib, _ = simulators.start(spawn_child, "tickmesh.handlers.ib.sim.server", "ib-sim", None,
                             {"symbols": ["AAPL", "MSFT"], "rate": 40})
    quotes = asyncio.run(asyncio.wait_for(same_moment_quotes(alpaca, polygon, ib), 40))
    mids = {provider: (bid + ask) / 2 for provider, (_, bid, ask) in quotes.items()}
    for provider, (_, bid, ask) in quotes.items():
        assert 0 < ask - bid < MAX_SPREAD * mids[provider], (provider, bid, ask)
    assert max(mids.values()) / min(mids.values()) - 1 < MID_TOLERANCE, mids
    assert abs(mids["ib"] / fair_price("AAPL", time.time_ns()) - 1) < 0.01


Quote = tuple[float, float, float]  # received (monotonic s), bid, ask


async def same_moment_quotes(alpaca: int, polygon: int, ib_port: int) -> dict[str, Quote]:
    """One AAPL quote from each simulator, all received within WINDOW_S of one another."""
    latest: dict[str, Quote] = {}
    together = asyncio.Event()

    def seen(provider: str, bid: float, ask: float) -> None:
        latest[provider] = (time.monotonic(), bid, ask)
        received = [when for when, _, _ in latest.values()]
        if len(latest) == 3 and max(received) - min(received) <= WINDOW_S:
            together.set()

    ib = IB()
    await ib.connectAsync("127.0.0.1", ib_port, clientId=1, timeout=10)
    try:
        [contract] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqTickByTickData(contract, "BidAsk")
        ticker.updateEvent += lambda t: t.bid > 0 and t.ask > 0 and seen("ib", t.bid, t.ask)
        async with connect(f"ws://127.0.0.1:{alpaca}/v2/iex") as a, \
                connect(f"ws://127.0.0.1:{polygon}/stocks") as p:
            readers = [asyncio.create_task(read_alpaca(a, seen)),
                       asyncio.create_task(read_polygon(p, seen))]
            try:
                await together.wait()
            finally:
                for reader in readers:
                    reader.cancel()
    finally:
        ib.disconnect()
    return dict(latest)


async def read_alpaca(ws: ClientConnection, seen) -> None:
    await ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
    await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
    async for frame in ws:
        for message in json.loads(frame):
            if message.get("T") == "q" and message["S"] == "AAPL":
                seen("alpaca", message["bp"], message["ap"])


async def read_polygon(ws: ClientConnection, seen) -> None:
    await ws.send(json.dumps({"action": "auth", "params": "any key"}))
    await ws.send(json.dumps({"action": "subscribe", "params": "Q.AAPL"}))
    async for frame in ws:
        for message in json.loads(frame):
            if message.get("ev") == "Q" and message["sym"] == "AAPL":
                seen("polygon", message["bp"], message["ap"])
