"""The heartbeat monitor as a real process on a real bus: the Alpaca simulator goes quiet (its
/control/quiet) during market hours (the monitor's fake_now: a Tuesday 10:00 in New York) and
the monitor raises silent_connection, then clears it when data resumes; at 03:00 New York the
same silence raises nothing."""

from __future__ import annotations

import pytest

from tickmesh.bus import Alert, Trade
from tests import simulators
from tests.buslog import BusLog
from tests.simcontrol import control

pytestmark = pytest.mark.timeout(60)

TUESDAY_10_NY = "2025-07-08T10:00:00-04:00"
TUESDAY_03_NY = "2025-07-08T03:00:00-04:00"
SILENT_AFTER = 1.0
QUIET_SECONDS = 3.0


def start_feed(spawn_child) -> int:
    """The Alpaca simulator and handler (which never drops a quiet connection); the port."""
    port, _ = simulators.start(spawn_child, "tickmesh.handlers.alpaca.sim.server", "alpaca-sim", None,
                               {"rate": 50, "symbols": ["AAPL"]})
    spawn_child("tickmesh.handlers.alpaca.handler", "alpaca", {
        "url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["AAPL"], "stale_after": 0})
    return port


def start_monitor(spawn_child, fake_now: str) -> None:
    spawn_child("tickmesh.consumers.monitor", "monitor", {
        "fake_now": fake_now, "clear_after": 0.5, "check_interval": 0.1,
        "feeds": {"alpaca": {"calendar": "XNYS", "silent_after": SILENT_AFTER,
                             "symbol_stale_after": 30}}})


def alerts(bus: BusLog, since: int = 0) -> list[tuple[str, str, str]]:
    return [(a.provider, a.what, a.state) for a in bus.of(Alert, since)]


def test_a_silent_feed_in_market_hours_raises_and_clears_an_alert(spawn_child, forwarder):
    with BusLog(forwarder.subscribe, ["alert", "trade.alpaca", "heartbeat.monitor"]) as bus:
        port = start_feed(spawn_child)
        start_monitor(spawn_child, TUESDAY_10_NY)
        bus.until(lambda _: bus.of(Trade) and bus.heartbeats("monitor"),
                  what="trades and the monitor")
        quiet = bus.mark()
        control(port, "quiet", seconds=QUIET_SECONDS)
        bus.until(lambda _: ("alpaca", "silent_connection", "raised") in alerts(bus, quiet),
                  what="a silent_connection alert")
        raised = next(a for a in bus.of(Alert, quiet) if a.state == "raised")
        assert "market regular" in raised.message and raised.symbol == ""
        bus.until(lambda _: ("alpaca", "silent_connection", "cleared") in alerts(bus, quiet),
                  what="the alert cleared once data resumed")
        assert bus.of(Trade, bus.events.index(raised))  # data came back before it cleared
        assert alerts(bus, quiet) == [("alpaca", "silent_connection", "raised"),
                                      ("alpaca", "silent_connection", "cleared")]


def test_no_alert_for_a_silent_equity_feed_at_3_in_new_york(spawn_child, forwarder):
    with BusLog(forwarder.subscribe, ["alert", "trade.alpaca", "heartbeat.monitor"]) as bus:
        port = start_feed(spawn_child)
        start_monitor(spawn_child, TUESDAY_03_NY)
        bus.until(lambda _: bus.of(Trade) and bus.heartbeats("monitor"),
                  what="trades and the monitor")
        quiet = bus.mark()
        control(port, "quiet", seconds=QUIET_SECONDS)
        # the monitor has seen the market closed, and heartbeated well past the silence limit
        bus.until(lambda _: len([h for h in bus.heartbeats("monitor", quiet)
                                 if h.metric("monitored_feeds", phase="closed") == 1]) >= 3,
                  what="three monitor heartbeats into the silence")
        assert alerts(bus) == []
