"""Bars: the pure aggregator against a reference computed directly from the trades (random
trades, several intervals, late trades, empty intervals), and the bar builder as a real process
on a real bus."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickmesh.bus import Bar, Publisher, Trade
from tickmesh.consumers.bars.aggregate import NS, Aggregator
from tickmesh.consumers.bars.bars import Settings, interval_seconds
from tickmesh.runtime.settings import SettingsError, read
from tests.buslog import BusLog
from tests.publishing import quote, trade
from tests.supervised import child_toml, tickmesh, write_config
from tests.test_groundwork_purity import loaded_io

T0 = 1_700_000_100 * NS  # a multiple of 300 s: every interval's bars start here
GRACE = 250_000_000

# (provider, symbol, ts_event offset ns, arrival delay ns, price, size)
trades_strategy = st.lists(st.tuples(
    st.sampled_from(["alpaca", "polygon"]), st.sampled_from(["AAPL", "BRK.B"]),
    st.integers(0, 700 * NS), st.integers(0, 3 * NS),
    st.floats(1, 1000, allow_nan=False), st.floats(0, 500, allow_nan=False)), max_size=60)


def make_trades(rows: list[tuple]) -> list[tuple[int, Trade]]:
    """(arrival ns, trade), in arrival order (ties: as generated)."""
    arrivals = [(T0 + offset + delay, Trade(provider=provider, symbol=symbol, ts_event=T0 + offset,
                                           ts_recv=0, price=price, size=size))
                for provider, symbol, offset, delay, price, size in rows]
    return sorted(arrivals, key=lambda pair: pair[0])


def reference(trades: list[tuple[int, Trade]], intervals: tuple[int, ...], grace: int) -> dict:
    """Bars straight from the definition: per (provider, symbol, interval, start), the trades
    that arrived before start + interval + grace."""
    groups = defaultdict(list)
    for arrival, trade in trades:
        for iv in intervals:
            start = trade.ts_event // (iv * NS) * (iv * NS)
            if arrival < start + iv * NS + grace:
                groups[trade.provider, trade.symbol, iv, start].append(trade)
    bars = {}
    for key, group in groups.items():
        first = min(group, key=lambda t: t.ts_event)  # min/max keep the first of equals
        last = max(reversed(group), key=lambda t: t.ts_event)
        volume = sum(t.size for t in group)
        vwap = sum(t.price * t.size for t in group) / volume if volume else last.price
        bars[key] = (first.price, max(t.price for t in group), min(t.price for t in group),
                     last.price, pytest.approx(volume), pytest.approx(vwap), len(group))
    return bars


def run_aggregator(trades: list[tuple[int, Trade]], intervals: tuple[int, ...],
                   grace: int) -> tuple[list[Bar], int]:
    """Feed the trades at their arrival times, closing bars before each; then close all."""
    aggregator = Aggregator(intervals, grace)
    bars, late = [], 0
    for arrival, trade in trades:
        bars += aggregator.close(arrival)
        late += len(aggregator.add(trade, arrival))
    bars += aggregator.close(T0 + 10_000 * NS)
    return bars, late


@given(trades_strategy, st.sampled_from([(1,), (1, 60), (1, 60, 300), (5, 300)]))
def test_bars_equal_the_reference_computed_from_the_trades(rows, intervals):
    trades = make_trades(rows)
    bars, late = run_aggregator(trades, intervals, GRACE)
    expected = reference(trades, intervals, GRACE)
    got = {(b.provider, b.symbol, b.interval_s, b.ts_event):
           (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades) for b in bars}
    assert len(got) == len(bars)  # each bar published once
    assert got == expected
    assert late == len(trades) * len(intervals) - sum(b.trades for b in bars)


def test_a_late_trade_is_dropped_and_reported_and_a_published_bar_is_final():
    aggregator = Aggregator((1, 60), GRACE)
    on_time = Trade(provider="ib", symbol="AAPL", ts_event=T0 + 100, ts_recv=0, price=10.0,
                    size=2.0)
    assert aggregator.add(on_time, T0 + 200) == []
    assert aggregator.close(T0 + NS + GRACE - 1) == []  # not yet: the grace runs
    [closed] = aggregator.close(T0 + NS + GRACE)
    assert (closed.interval_s, closed.ts_event, closed.trades) == (1, T0, 1)
    late = Trade(provider="ib", symbol="AAPL", ts_event=T0 + 500, ts_recv=0, price=99.0, size=1.0)
    assert aggregator.add(late, T0 + NS + GRACE + 1) == [1]  # still counts in its minute
    assert aggregator.close(T0 + 5 * NS) == []  # the 1 s bar is never published again
    [minute] = aggregator.close(T0 + 60 * NS + GRACE)
    assert (minute.interval_s, minute.trades, minute.high, minute.volume) == (60, 2, 99.0, 3.0)
    assert minute.vwap == pytest.approx((10.0 * 2 + 99.0) / 3)


def test_intervals_without_trades_make_no_bars_and_bars_align_to_the_wall_clock():
    aggregator = Aggregator((1, 300), 0, suffix="-bars")
    for seconds in (0.5, 3.2, 3.7, 299.0, 301.0):
        ts = T0 + int(seconds * NS)
        aggregator.add(Trade(provider="ib", symbol="X", ts_event=ts, ts_recv=0, price=seconds,
                             size=1.0), ts)
    bars = aggregator.close(T0 + 1000 * NS)
    ones = [((b.ts_event - T0) // NS, b.trades) for b in bars if b.interval_s == 1]
    fives = [((b.ts_event - T0) // NS, b.trades) for b in bars if b.interval_s == 300]
    assert ones == [(0, 1), (3, 2), (299, 1), (301, 1)]
    assert fives == [(0, 4), (300, 1)]
    assert {b.provider for b in bars} == {"ib-bars"}
    three = next(b for b in bars if b.interval_s == 1 and b.ts_event == T0 + 3 * NS)
    assert (three.open, three.close, three.low, three.high) == (3.2, 3.7, 3.2, 3.7)


def test_open_and_close_follow_the_trades_time_not_their_arrival():
    aggregator = Aggregator((1,), GRACE)
    for offset, price in ((500, 2.0), (100, 1.0), (900, 3.0), (700, 4.0)):
        aggregator.add(Trade(provider="ib", symbol="X", ts_event=T0 + offset, ts_recv=0,
                             price=price, size=1.0), T0 + 1000)
    [bar] = aggregator.close(T0 + 2 * NS)
    assert (bar.open, bar.close, bar.trades) == (1.0, 3.0, 4)


def test_settings_read_intervals_and_refuse_what_would_collide_or_make_no_sense():
    assert read(Settings, {"intervals": "1s, 1m, 5m"}).seconds == (1, 60, 300)
    assert read(Settings, {"intervals": ["30", "1h", "1s"]}).seconds == (1, 30, 3600)
    assert interval_seconds("2m") == 120
    for bad, key in (({"intervals": ["0s"]}, "intervals"), ({"intervals": ["1d"]}, "intervals"),
                     ({"suffix": ""}, "suffix"), ({"suffix": "-Bars"}, "suffix"),
                     ({"grace": -1}, "grace"), ({"providers": ["Alpaca"]}, "providers")):
        with pytest.raises(SettingsError, match=f"settings.{key}"):
            read(Settings, bad)


def test_the_aggregator_is_pure():
    assert loaded_io("tickmesh.consumers.bars.aggregate") == []


# --- the bar builder, a real process on a real bus ------------------------------------------

def wait_until_subscribed(bus: BusLog, publisher: Publisher) -> None:
    """Probe trades until the builder's heartbeat shows it received one."""
    def received() -> bool:
        publisher.publish(trade("PROBE", 1.0, 1.0))
        beat = bus.heartbeat("bars")
        return bool(beat and beat.metric("events_received") > 0)

    bus.until(lambda _: received(), what="the bar builder to receive trades")


def test_the_bar_builder_publishes_bars_of_its_trades_on_its_own_topics(forwarder, spawn_child):
    spawn_child("tickmesh.consumers.bars", "bars", {"intervals": ["1s", "2s"], "grace": 2.0,
                                           "providers": ["alpaca", "polygon"]})
    publisher = Publisher(forwarder.publish)
    with BusLog(forwarder.subscribe, ["bar.*.AAPL", "bar.*.MSFT", "bar.*.NVDA",
                                      "heartbeat.bars"]) as bus:
        wait_until_subscribed(bus, publisher)
        sent = []
        for i in range(40):
            for symbol in ("AAPL", "MSFT"):
                sent.append(trade(symbol, 100.0 + i % 7, 1.0 + i % 3))
                publisher.publish(sent[-1])
        publisher.publish(quote("NVDA", 1.0, 2.0, ts_recv=0))  # NVDA has no trades: no NVDA bar
        publisher.publish(trade("AAPL", 500.0, 1.0, ts_event=time.time_ns() - 30 * NS))  # late
        native = Bar(provider="polygon", symbol="AAPL", ts_event=T0, ts_recv=0, interval_s=60,
                     open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
        publisher.publish(native)  # Polygon's own bar, on its own topic
        arrivals = [(t.ts_event, t) for t in sent]
        expected = reference(arrivals, (1, 2), 2 * NS)

        def built() -> dict:
            return {("alpaca", b.symbol, b.interval_s, b.ts_event):
                    (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades)
                    for b in bus.of(Bar) if b.provider == "alpaca-bars"}

        bus.until(lambda _: len(built()) >= len(expected), what="every bar of the trades")
        bus.until(lambda _: (beat := bus.heartbeat("bars")) and beat.metric(
            "bar_trades_late", provider="alpaca", interval="2") == 1, what="the late trade")
    publisher.close()
    assert built() == expected
    assert {b.symbol for b in bus.of(Bar)} == {"AAPL", "MSFT"}
    assert [b.provider for b in bus.of(Bar) if b.provider == "polygon"] == ["polygon"]
    assert bus.sub.tracker.restarts == 0 and bus.sub.gaps == 0  # one publisher per topic
    beat = bus.heartbeat("bars")
    assert beat.metric("bar_trades_late", provider="alpaca", interval="1") == 1


def test_tickmesh_check_reads_the_bar_builders_settings(spawn, run_dir):
    good = write_config(run_dir, child_toml("bars", "tickmesh.consumers.bars", {"intervals": ["1s", "5m"]}))
    assert tickmesh(spawn, run_dir, "check", str(good)).code == 0
    bad = write_config(run_dir, child_toml("bars", "tickmesh.consumers.bars", {"intervals": ["5x"]}))
    result = tickmesh(spawn, run_dir, "check", str(bad))
    assert result.code == 2 and "children[0] (bars).settings.intervals: '5x'" in result.err
