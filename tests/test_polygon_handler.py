"""The Polygon handler as a real process: from the simulator's socket to normalized events on
the bus, through dropped connections, stalled connections, server restarts and a bad key."""

from __future__ import annotations

import json

import pytest

from tickmesh.bus.events import Bar, Heartbeat, Quote, Status, Trade
from tickmesh.runtime.settings import read
from tickmesh.handlers.polygon.handler import DEFAULT_URL, PolygonSettings
from tests.buslog import BusLog
from tests.conftest import free_port, kill_group
from tests.polygon_sim import SIM_KEY_ENV, Sim, start_sim

KEY = "handler-test-key"
KEY_ENV = "TICKMESH_TEST_POLYGON_KEY"
SYMBOLS = ["AAPL", "MSFT"]
CHANNELS = ["T", "Q", "A"]
TOPICS = sorted(f"{c}.{s}" for c in CHANNELS for s in SYMBOLS)
HANDLER_SETTINGS = {"symbols": SYMBOLS, "channels": CHANNELS, "key_env": KEY_ENV,
                    "stale_after": 1.0, "backoff_min": 0.1}
BUS_PATTERNS = [f"{kind}.polygon" for kind in ("trade", "quote", "bar", "status", "heartbeat")]


@pytest.fixture
def sim(spawn_child, monkeypatch) -> Sim:
    monkeypatch.setenv(SIM_KEY_ENV, KEY)
    return start_sim(spawn_child, key_env=SIM_KEY_ENV, symbols=SYMBOLS + ["SPY"], rate=100)


@pytest.fixture
def handler_key(monkeypatch) -> str:
    """The key the handler reads (from KEY_ENV): the one the simulator accepts."""
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def streaming(bus: BusLog) -> None:
    bus.until(lambda events: {Trade, Quote, Bar} <= {type(e) for e in events},
              what="trades, quotes and bars")


def subscribed_again(bus: BusLog, since: int) -> None:
    """A disconnect, then a new connection all the way to subscribed, then fresh trades."""
    def back(events) -> bool:
        resubscribed = bus.resubscribed(since)
        return resubscribed is not None and any(isinstance(e, Trade) for e in events[resubscribed:])

    bus.until(back, what="a reconnect, resubscribe and fresh trades")


def test_trades_quotes_and_bars_arrive_normalized(
        forwarder, bus, spawn_child, start_handler, handler_key, monkeypatch, tmp_path):
    # The handler starts first, so that its bus connection is up (a heartbeat came through)
    # before the simulator opens and every state change of the first session is seen.
    port = free_port()
    log = tmp_path / "handler.log"
    start_handler("polygon", port, log=log)
    bus.until(lambda events: any(isinstance(e, Heartbeat) for e in events), what="a heartbeat")
    monkeypatch.setenv(SIM_KEY_ENV, KEY)
    sim = start_sim(spawn_child, port=port, key_env=SIM_KEY_ENV, symbols=SYMBOLS + ["SPY"],
                    rate=100)
    streaming(bus)
    states = bus.states()
    last_try = len(states) - states[::-1].index("connecting") - 1
    assert states[last_try:last_try + 4] == ["connecting", "connected", "authenticated", "subscribed"]
    assert "disconnected" in states[:last_try]  # the attempts before the simulator was up
    market = [e for e in bus.events if isinstance(e, (Trade, Quote, Bar))]
    assert {e.symbol for e in market} <= set(SYMBOLS)  # SPY is not subscribed
    trade = next(e for e in market if isinstance(e, Trade))
    assert trade.exchange.isdigit() and trade.trade_id and trade.price > 0
    assert abs(trade.ts_event - trade.ts_recv) < 5 * 10**9  # ms on the wire, ns on the bus
    bar = next(e for e in market if isinstance(e, Bar))
    assert bar.interval_s == 1 and bar.ts_event % 10**9 == 0 and bar.low <= bar.high
    assert sim.stats()["subscriptions"] == [TOPICS]
    assert KEY not in log.read_text()


def test_survives_a_dropped_connection(forwarder, bus, sim, start_handler, handler_key):
    start_handler("polygon", sim.port)
    streaming(bus)
    since = bus.mark()
    sim.control("drop")
    subscribed_again(bus, since)
    assert sim.stats()["subscriptions"] == [TOPICS]


def test_survives_a_silent_connection(forwarder, bus, sim, start_handler, handler_key):
    start_handler("polygon", sim.port)
    streaming(bus)
    since = bus.mark()
    sim.control("stall", seconds=30)
    subscribed_again(bus, since)
    disconnect = next(s for s in bus.of(Status, since) if s.state == "disconnected")
    assert "stale" in disconnect.message
    assert TOPICS in sim.stats()["subscriptions"]


def test_survives_a_server_restart(forwarder, bus, sim, spawn_child, start_handler, handler_key):
    start_handler("polygon", sim.port)
    streaming(bus)
    since = bus.mark()
    kill_group(sim.proc)
    restarted = start_sim(spawn_child, port=sim.port, key_env=SIM_KEY_ENV, symbols=SYMBOLS,
                          rate=100)
    subscribed_again(bus, since)
    assert restarted.stats()["subscriptions"] == [TOPICS]


def test_bad_key_gives_an_error_status_and_growing_backoff(forwarder, bus, sim, start_handler,
                                                           monkeypatch):
    monkeypatch.setenv(KEY_ENV, "wrong")
    start_handler("polygon", sim.port, backoff_min=0.2, backoff_max=10)
    bus.until(lambda _: bus.states().count("connecting") >= 5, timeout=20,
              what="five connection attempts")
    errors = [s for s in bus.of(Status) if s.state == "error"]
    assert errors and errors[0].message == "auth_failed: authentication failed"
    attempts = [s.ts_event for s in bus.of(Status) if s.state == "connecting"]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert all(later > earlier for earlier, later in zip(gaps, gaps[2:])), gaps
    assert not any(isinstance(e, Trade) for e in bus.events)
    assert sim.stats()["counters"]['sim_errors_sent{code="auth_failed"}'] >= 4


def test_garbage_from_the_server_is_counted_not_fatal(
        forwarder, bus, spawn_child, start_handler, handler_key, tmp_path):
    good = {"ev": "T", "sym": "AAPL", "x": 4, "i": "1", "p": 1.5, "s": 10, "t": 1, "q": 1}
    lines = ["not json at all", json.dumps({"ev": "T"}), json.dumps([{**good, "p": "NaN"}]),
             json.dumps([{"ev": "LULD", "T": "AAPL"}, good])]
    recording = tmp_path / "frames.jsonl"
    recording.write_text("\n".join(lines * 3) + "\n")
    sim = start_sim(spawn_child, replay=str(recording), rate=100)
    start_handler("polygon", sim.port, channels=["T"], stale_after=0)

    def counted(events) -> Heartbeat | None:
        beats = [e for e in events
                 if isinstance(e, Heartbeat) and e.metric("bad_input", reason="malformed_T") >= 3]
        return beats[-1] if beats else None

    beat = bus.until(counted, what="a heartbeat counting the malformed frames")
    assert beat.metric("bad_input", reason="malformed_frame") >= 6
    assert beat.metric("bad_input", reason="unknown_ev") >= 3
    assert len([e for e in bus.events if isinstance(e, Trade)]) == 3
    assert beat.metric("connects") == 1  # never reconnected over bad input


def test_settings_are_checked_by_name():
    settings = read(PolygonSettings, {"symbols": ["AAPL", "BRK.B"], "channels": ["T", "AM"]})
    assert settings.topics == ["T.AAPL", "T.BRK.B", "AM.AAPL", "AM.BRK.B"]
    assert (settings.key_env, settings.url) == ("POLYGON_API_KEY", DEFAULT_URL)
    assert settings.stale_after == 60.0
    for bad, name in [({}, "symbols"), ({"symbols": "AAPL"}, "symbols"),
                      ({"symbols": ["AAPL"], "channels": ["X"]}, "symbols/channels"),
                      ({"symbols": ["A|B"]}, "symbols/channels"),
                      ({"symbols": ["AAPL"], "key_env": ""}, "key_env"),
                      ({"symbols": ["AAPL"], "url": "http://x"}, "url")]:
        with pytest.raises(ValueError, match=name):
            read(PolygonSettings, bad)
