"""The heartbeat monitor's pure parts, on fake clocks: market hours (consumers.monitor.hours),
the alert machine's hysteresis (consumers.monitor.alerts), and the checks
(consumers.monitor.checks)."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from tickmesh.consumers.monitor.alerts import CLEARED, RAISED, AlertMachine, Key
from tickmesh.consumers.monitor.checks import (GAP_RATE, HEARTBEAT_STOPPED, RECONNECT_STORM,
                                               SILENT_CONNECTION, SYMBOL_REFUSED, SYMBOL_STALE,
                                               FeedSettings, Watch)
from tickmesh.consumers.monitor.hours import CLOSED, POST, PRE, REGULAR, MarketHours
from tickmesh.consumers.monitor.monitor import Settings
from tickmesh.runtime.settings import SettingsError, read

NEW_YORK = ZoneInfo("America/New_York")
pytestmark = pytest.mark.timeout(30)


def ny(text: str) -> float:
    """Seconds since the epoch of a New York wall time, e.g. "2025-07-08 10:00"."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()


TUESDAY_10 = ny("2025-07-08 10:00")
TUESDAY_03 = ny("2025-07-08 03:00")
SATURDAY_11 = ny("2025-07-12 11:00")
JULY_4_11 = ny("2025-07-04 11:00")  # a Friday, Independence Day: the exchange is closed


# --- market hours -------------------------------------------------------------------------

@pytest.mark.parametrize("when, phase", [
    ("2025-07-08 10:00", REGULAR), ("2025-07-08 09:29", PRE), ("2025-07-08 09:30", REGULAR),
    ("2025-07-08 03:00", CLOSED), ("2025-07-08 04:00", PRE), ("2025-07-08 16:00", POST),
    ("2025-07-08 19:59", POST), ("2025-07-08 20:00", CLOSED),
    ("2025-07-12 11:00", CLOSED), ("2025-07-13 11:00", CLOSED),  # Saturday, Sunday
    ("2025-07-04 11:00", CLOSED), ("2025-12-25 11:00", CLOSED),  # holidays
    ("2025-11-28 12:59", REGULAR), ("2025-11-28 13:00", POST),  # an early close at 13:00 ...
    ("2025-11-28 17:00", CLOSED),  # ... and its post-market ends 4 hours later
])
def test_us_equity_market_hours(when, phase):
    assert MarketHours("XNYS").phase(ny(when)) == phase


@pytest.mark.parametrize("when", [TUESDAY_03, TUESDAY_10, SATURDAY_11, JULY_4_11])
def test_crypto_trades_around_the_clock(when):
    assert MarketHours("24/7").phase(when) == REGULAR


def test_an_instant_beyond_the_calendar_keeps_alarms_on():
    assert MarketHours("XNYS").phase(ny("2099-07-08 03:00")) == REGULAR


# --- the alert machine ---------------------------------------------------------------------

def test_an_alert_is_raised_once_and_cleared_once_after_clear_after():
    machine = AlertMachine(clear_after=5)
    assert [machine.look(bad, t) for t, bad in [(0, False), (1, True), (2, True), (3, True)]] \
        == [None, RAISED, None, None]
    assert machine.look(False, 4) is None  # fine since 4 ...
    assert machine.look(True, 6) is None  # ... but bad again: still raised, the wait restarts
    assert [machine.look(False, t) for t in (7, 10, 11.9)] == [None, None, None]
    assert machine.look(False, 12) == CLEARED  # fine for 5 s in a row
    assert machine.look(False, 30) is None


def test_no_opinion_changes_nothing():
    machine = AlertMachine(clear_after=1)
    assert machine.look(None, 0) is None and not machine.raised
    assert machine.look(True, 1) == RAISED
    assert machine.look(None, 10) is None and machine.raised


# --- the checks ----------------------------------------------------------------------------

EQUITIES = FeedSettings(calendar="XNYS", silent_after=10, silent_after_extended=60,
                        symbol_stale_after=30, max_reconnects=3, window=60, max_gap_rate=2)


def watch(start: float, feed: FeedSettings = EQUITIES, name: str = "alpaca", **kwargs) -> Watch:
    options = {"heartbeat_timeout": 5, "restart_after": 10, "clear_after": 2, **kwargs}
    return Watch({name: feed}, now=start, **options)


def alerts(w: Watch, now: float) -> list[tuple[str, str, str, str]]:
    return [(t.key.subject, t.key.symbol, t.key.what, t.state) for t in w.tick(now)]


def test_a_silent_equity_feed_alarms_at_10_on_a_tuesday():
    w = watch(TUESDAY_10)
    w.status("alpaca", "", "subscribed", TUESDAY_10)
    w.data("alpaca", "AAPL", TUESDAY_10 + 1)
    assert alerts(w, TUESDAY_10 + 10) == []
    assert alerts(w, TUESDAY_10 + 11.5) == [("alpaca", "", SILENT_CONNECTION, RAISED)]
    assert alerts(w, TUESDAY_10 + 20) == []  # raised once
    w.data("alpaca", "AAPL", TUESDAY_10 + 21)
    assert alerts(w, TUESDAY_10 + 21.5) == []  # fine, but not yet for clear_after
    assert alerts(w, TUESDAY_10 + 23.5) == [("alpaca", "", SILENT_CONNECTION, CLEARED)]


@pytest.mark.parametrize("start", [TUESDAY_03, SATURDAY_11, JULY_4_11])
def test_no_false_alarm_when_the_market_is_closed(start):
    w = watch(start)
    w.status("alpaca", "", "subscribed", start)
    w.data("alpaca", "AAPL", start)
    assert alerts(w, start + 600) == []


def test_pre_market_has_its_own_longer_limit():
    start = ny("2025-07-08 05:00")
    w = watch(start)
    assert alerts(w, start + 30) == []
    assert alerts(w, start + 61) == [("alpaca", "", SILENT_CONNECTION, RAISED)]


def test_crypto_alarms_at_any_hour():
    w = watch(SATURDAY_11, FeedSettings(calendar="24/7", silent_after=5), name="coinbase")
    assert alerts(w, SATURDAY_11 + 6) == [("coinbase", "", SILENT_CONNECTION, RAISED)]


def test_a_closing_market_clears_the_silent_alert():
    start = ny("2025-07-08 19:58")
    w = watch(start, FeedSettings(calendar="XNYS", silent_after=10, silent_after_extended=30))
    assert alerts(w, start + 31) == [("alpaca", "", SILENT_CONNECTION, RAISED)]
    assert alerts(w, ny("2025-07-08 20:00")) == []
    assert alerts(w, ny("2025-07-08 20:00") + 3) == [("alpaca", "", SILENT_CONNECTION, CLEARED)]


def test_a_down_connection_holds_the_silent_alert():
    w = watch(TUESDAY_10)
    w.status("alpaca", "", "disconnected", TUESDAY_10 + 1)
    assert alerts(w, TUESDAY_10 + 100) == []  # down, not silent: the handler's statuses say so
    w.status("alpaca", "", "subscribed", TUESDAY_10 + 100)
    assert alerts(w, TUESDAY_10 + 105) == []  # the silence counts from the new connection
    assert alerts(w, TUESDAY_10 + 111) == [("alpaca", "", SILENT_CONNECTION, RAISED)]


def test_a_symbol_that_stops_ticking_while_others_tick():
    w = watch(TUESDAY_10)
    for second in range(0, 45):
        w.data("alpaca", "MSFT", TUESDAY_10 + second)
        if second < 10:
            w.data("alpaca", "AAPL", TUESDAY_10 + second)
    assert alerts(w, TUESDAY_10 + 39) == []
    assert alerts(w, TUESDAY_10 + 41) == [("alpaca", "AAPL", SYMBOL_STALE, RAISED)]
    after_close = ny("2025-07-08 16:30")
    w.data("alpaca", "MSFT", after_close)
    assert alerts(w, after_close) == []
    assert alerts(w, after_close + 2) == [("alpaca", "AAPL", SYMBOL_STALE, CLEARED)]


def test_a_reconnect_storm():
    w = watch(TUESDAY_10)
    for i in range(4):
        w.status("alpaca", "", "disconnected", TUESDAY_10 + i)
        w.status("alpaca", "", "subscribed", TUESDAY_10 + i + 0.5)
        w.data("alpaca", "AAPL", TUESDAY_10 + i + 0.5)
    assert alerts(w, TUESDAY_10 + 4) == [("alpaca", "", RECONNECT_STORM, RAISED)]
    w.data("alpaca", "AAPL", TUESDAY_10 + 60.5)
    assert alerts(w, TUESDAY_10 + 60.5) == []  # the first disconnect left the window
    assert alerts(w, TUESDAY_10 + 62.5) == [("alpaca", "", RECONNECT_STORM, CLEARED)]


def test_a_gap_rate_too_high():
    w = watch(SATURDAY_11)  # at any hour
    for i in range(3):
        w.gap("alpaca", SATURDAY_11 + i)
    w.status("alpaca", "AAPL", "resyncing", SATURDAY_11 + 3)  # a provider-side gap
    assert alerts(w, SATURDAY_11 + 4) == [("alpaca", "", GAP_RATE, RAISED)]  # 4 a minute > 2


def test_unconfigured_feeds_are_not_watched():
    w = watch(TUESDAY_10)
    w.data("polygon", "AAPL", TUESDAY_10)
    w.gap("polygon", TUESDAY_10)
    assert all(key.subject == "alpaca" for key in w.alerts.machines)


def test_stopped_heartbeats_and_hung_processes():
    w = watch(SATURDAY_11)
    start = SATURDAY_11
    for second in range(0, 30):
        w.heartbeat("supervisor", 1, start + second)
        if second <= 2:
            w.heartbeat("alpaca", 42, start + second)
    assert w.hung(start + 11) == []
    assert alerts(w, start + 7.5) == [("alpaca", "", HEARTBEAT_STOPPED, RAISED)]
    assert w.hung(start + 12) == [("alpaca", 42)]
    assert w.hung(start + 60) == []  # nobody's heartbeat is fresh: the bus or we are stuck
    w.heartbeat("alpaca", 43, start + 30)
    assert alerts(w, start + 30) == []
    assert alerts(w, start + 32) == [("alpaca", "", HEARTBEAT_STOPPED, CLEARED)]



# --- what is known of a stop: a final heartbeat (issue 16) ---------------------------------

CRYPTO = FeedSettings(calendar="24/7", silent_after=5, symbol_stale_after=30)


def test_a_process_that_stops_on_purpose_raises_nothing():
    w = watch(SATURDAY_11)
    start = SATURDAY_11
    for second in range(0, 30):
        w.heartbeat("supervisor", 1, start + second, epoch=1)
        if second <= 2:
            w.heartbeat("tail", 42, start + second, epoch=5)
    w.heartbeat("tail", 42, start + 2.5, epoch=5, final=True)  # exit 0, stop, reload
    assert alerts(w, start + 29) == []
    assert w.hung(start + 29) == []


def test_a_final_heartbeat_clears_an_open_heartbeat_stopped_at_once():
    w = watch(SATURDAY_11)
    w.heartbeat("alpaca", 42, SATURDAY_11, epoch=5)
    assert alerts(w, SATURDAY_11 + 6) == [("alpaca", "", HEARTBEAT_STOPPED, RAISED)]
    w.heartbeat("alpaca", 42, SATURDAY_11 + 7, epoch=5, final=True)  # slow, then stopped
    assert alerts(w, SATURDAY_11 + 7) == [("alpaca", "", HEARTBEAT_STOPPED, CLEARED)]
    assert alerts(w, SATURDAY_11 + 60) == []


def test_a_process_silent_without_a_final_heartbeat_still_raises_until_its_new_life():
    w = watch(SATURDAY_11)
    w.heartbeat("alpaca", 42, SATURDAY_11, epoch=5)  # then SIGKILLed, or hung
    assert alerts(w, SATURDAY_11 + 6) == [("alpaca", "", HEARTBEAT_STOPPED, RAISED)]
    w.heartbeat("alpaca", 43, SATURDAY_11 + 8, epoch=6)
    assert alerts(w, SATURDAY_11 + 8) == []
    assert alerts(w, SATURDAY_11 + 10) == [("alpaca", "", HEARTBEAT_STOPPED, CLEARED)]


def coinbase(start: float) -> Watch:
    """A crypto feed, subscribed and flowing from the handler `coinbase` of epoch 7 (whose
    heartbeats are not what these tests watch)."""
    w = watch(start, CRYPTO, name="coinbase", heartbeat_timeout=1000, restart_after=1000)
    w.heartbeat("coinbase", 42, start, epoch=7)
    w.status("coinbase", "", "subscribed", start, epoch=7)
    w.data("coinbase", "BTC-USD", start + 1, epoch=7)
    return w


def test_a_feed_stopped_with_its_handler_is_not_silent():
    w = coinbase(SATURDAY_11)
    w.heartbeat("coinbase", 42, SATURDAY_11 + 2, epoch=7, final=True)  # `tickmesh stop`
    assert alerts(w, SATURDAY_11 + 600) == []
    w.status("coinbase", "", "connecting", SATURDAY_11 + 700, epoch=8)  # started again
    w.status("coinbase", "", "subscribed", SATURDAY_11 + 701, epoch=8)
    assert alerts(w, SATURDAY_11 + 705) == []  # the silence counts from its new connection
    assert alerts(w, SATURDAY_11 + 707) == [("coinbase", "", SILENT_CONNECTION, RAISED)]


def test_a_stop_clears_its_feed_s_open_alerts_at_once():
    w = coinbase(SATURDAY_11)
    w.status("coinbase", "BTC-USD", "error", SATURDAY_11 + 1, epoch=7, message="refused")
    assert alerts(w, SATURDAY_11 + 7) == [("coinbase", "", SILENT_CONNECTION, RAISED),
                                          ("coinbase", "BTC-USD", SYMBOL_REFUSED, RAISED)]
    w.heartbeat("coinbase", 42, SATURDAY_11 + 8, epoch=7, final=True)
    assert sorted(alerts(w, SATURDAY_11 + 8)) == [
        ("coinbase", "", SILENT_CONNECTION, CLEARED),
        ("coinbase", "BTC-USD", SYMBOL_REFUSED, CLEARED)]
    assert alerts(w, SATURDAY_11 + 600) == []


def test_another_handler_s_stop_leaves_the_feed_watched():
    w = coinbase(SATURDAY_11)
    w.data("coinbase", "ETH-USD", SATURDAY_11 + 1, epoch=9)  # a second handler of coinbase
    w.heartbeat("coinbase-b", 43, SATURDAY_11 + 2, epoch=9, final=True)
    w.heartbeat("other", 44, SATURDAY_11 + 2, epoch=11, final=True)
    assert alerts(w, SATURDAY_11 + 7) == [("coinbase", "", SILENT_CONNECTION, RAISED)]


def test_a_refused_symbol_raises_until_the_venue_accepts_it():
    w = coinbase(SATURDAY_11)
    w.status("coinbase", "DOGE-USD", "error", SATURDAY_11 + 1, epoch=7,
             message="Failed to subscribe: DOGE-USD is delisted")
    w.data("coinbase", "BTC-USD", SATURDAY_11 + 2, epoch=7)
    assert alerts(w, SATURDAY_11 + 2) == [("coinbase", "DOGE-USD", SYMBOL_REFUSED, RAISED)]
    assert alerts(w, SATURDAY_11 + 3) == []  # raised once
    w.status("coinbase", "DOGE-USD", "subscribed", SATURDAY_11 + 3, epoch=7)
    w.data("coinbase", "BTC-USD", SATURDAY_11 + 4, epoch=7)
    assert alerts(w, SATURDAY_11 + 4) == []  # fine, but not yet for clear_after
    assert alerts(w, SATURDAY_11 + 6) == [("coinbase", "DOGE-USD", SYMBOL_REFUSED, CLEARED)]


def test_a_refusal_says_the_venue_s_message():
    w = coinbase(SATURDAY_11)
    w.status("coinbase", "DOGE-USD", "error", SATURDAY_11 + 1, epoch=7,
             message="Failed to subscribe: DOGE-USD is delisted")
    [transition] = w.tick(SATURDAY_11 + 2)
    assert "DOGE-USD is delisted" in transition.message


def test_a_refusal_ends_with_the_life_of_the_handler_that_was_refused():
    w = coinbase(SATURDAY_11)
    w.status("coinbase", "DOGE-USD", "error", SATURDAY_11 + 1, epoch=7, message="refused")
    assert alerts(w, SATURDAY_11 + 1) == [("coinbase", "DOGE-USD", SYMBOL_REFUSED, RAISED)]
    w.heartbeat("coinbase", 45, SATURDAY_11 + 2, epoch=8)  # restarted (killed: no final)
    w.data("coinbase", "BTC-USD", SATURDAY_11 + 3, epoch=8)
    assert alerts(w, SATURDAY_11 + 3) == []
    assert alerts(w, SATURDAY_11 + 5) == [("coinbase", "DOGE-USD", SYMBOL_REFUSED, CLEARED)]


# --- settings -------------------------------------------------------------------------------

def test_settings_per_feed():
    settings = read(Settings, {"control_endpoint": "ipc:///tmp/x/control", "feeds": {
        "alpaca": {"calendar": "XNYS", "silent_after": 5},
        "coinbase": {"calendar": "24/7", "max_reconnects": 3, "window": 30}}})
    assert settings.feeds["alpaca"].silent_after == 5.0
    assert settings.feeds["coinbase"] == FeedSettings(calendar="24/7", max_reconnects=3,
                                                      window=30.0)


@pytest.mark.parametrize("raw, key", [
    ({"feeds": {"alpaca": {"calendar": "NOPE"}}}, "settings.feeds.alpaca.calendar"),
    ({"feeds": {"alpaca": {"silent_after": "x"}}}, "settings.feeds.alpaca.silent_after"),
    ({"feeds": {"alpaca": {"silent": 1}}}, "settings.feeds.alpaca.silent"),
    ({"feeds": {"alpaca": 3}}, "settings.feeds.alpaca"),
    ({"feeds": {"Bad.Name": {}}}, "settings.feeds"),
    ({"fake_now": "2025-07-08 10:00"}, "settings.fake_now"),  # no UTC offset
    ({"restart_after": 1}, "settings.restart_after"),
    ({"control_endpoint": "http://x"}, "settings.control_endpoint"),
])
def test_bad_settings_name_their_key(raw, key):
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        read(Settings, raw)


def test_alert_keys_are_hashable_names():
    assert Key("alpaca", "", GAP_RATE).what == GAP_RATE
