"""Fault suite, the network and the provider: real handler processes against real simulators, or
against raw sockets in the test for what no simulator does (a server that accepts TCP and never
answers the WebSocket handshake; one that drips a frame a byte at a time; one that announces a
frame over the client's size limit). In every case the handler says what happened (a Status,
a metric), does not hang, does not crash, and comes back.

Already shown elsewhere, so not repeated here: a connection reset (simulator `drop`:
test_alpaca_live.py::test_reconnects_and_resubscribes_after_a_dropped_connection,
test_polygon_handler.py::test_survives_a_dropped_connection); a half-open connection (`stall`,
caught by the ping timeout: test_alpaca_live.py::test_unanswered_pings_end_the_connection); a
silent one (`quiet`: test_alpaca_live.py::test_stale_connection_is_dropped_and_replaced); one
server restart (test_polygon_handler.py::test_survives_a_server_restart); auth rejected
(test_alpaca_live.py::test_wrong_keys_give_error_402_and_a_growing_backoff,
test_polygon_handler.py::test_bad_key_gives_an_error_status_and_growing_backoff); a flapping
server's growing backoff (test_handler_hardening.py)."""

from __future__ import annotations

import os
import signal
import struct
import time

import pytest

from tickmesh.bus import Quote, Status, Trade
from tests import simulators
from tests.buslog import BusLog
from tests.polygon_sim import SIM_KEY_ENV, start_sim
from tests.rawserver import RawServer, text_frame, upgrade
from tests.simcontrol import control

ALPACA_SIM = "tickmesh.handlers.alpaca.sim.server"
HANDLER_SETTINGS = {"symbols": ["AAPL"]}
CONNECTED = b'[{"T":"success","msg":"connected"}]'
BUS_PATTERNS = ["trade.alpaca", "quote.alpaca", "status.alpaca", "heartbeat.alpaca"]


def start_alpaca_sim(spawn_child, port: int | None = None, **settings):
    return simulators.start(spawn_child, ALPACA_SIM, "alpaca-sim", port,
                            {"rate": 200, "symbols": ["AAPL", "MSFT"], **settings})


def disconnects(bus: BusLog, since: int = 0) -> list[Status]:
    return [s for s in bus.of(Status, since) if s.state == "disconnected"]


# --- raw servers -----------------------------------------------------------------------------

# --- the network ---------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_a_server_that_never_completes_the_handshake_times_out_and_is_retried(start_handler, bus):
    def mute(conn, stop):  # accepts, reads the request, answers nothing
        stop.wait(30)

    with RawServer(mute) as server:
        handler = start_handler("alpaca", url=server.url, open_timeout=0.5)
        bus.until(lambda _: len(disconnects(bus)) >= 3, what="three handshakes timed out")
        assert server.accepted >= 3
    assert all("Timeout" in s.message or "timed out" in s.message for s in disconnects(bus)), \
        [s.message for s in disconnects(bus)]
    assert "connected" not in bus.states()
    assert handler.poll() is None


@pytest.mark.timeout(60)
def test_a_frame_dripped_a_byte_at_a_time_ends_in_the_stale_timeout(start_handler, bus):
    """The server upgrades, then sends a frame so slowly that it never ends: bytes keep
    arriving, but no frame does; the handler neither hangs (the stale timeout, which counts
    whole frames, ends the connection) nor crashes, and connects again."""
    def drip(conn, stop):
        upgrade(conn)
        frame = text_frame(CONNECTED)
        for byte in frame[:-1]:
            conn.sendall(bytes([byte]))
            if stop.wait(0.1):
                return
        stop.wait(30)

    with RawServer(drip) as server:
        handler = start_handler("alpaca", url=server.url, stale_after=1.0, ping_interval=0)
        bus.until(lambda _: len(disconnects(bus)) >= 2 and server.accepted >= 3,
                  what="two dripping connections ended", timeout=20)
    for status in disconnects(bus)[:2]:
        assert "stale" in status.message, status.message
    assert bus.states()[:2] == ["connecting", "disconnected"]  # "connected" was never read
    assert handler.poll() is None


@pytest.mark.timeout(60)
def test_a_frame_over_the_size_limit_ends_the_connection_with_a_status(start_handler, bus):
    """A frame that announces 32 MiB (the client takes at most 16 MiB: MAX_MESSAGE_BYTES): the
    client fails the connection with 1009 (message too big) before reading it, says so, and
    reconnects. The server here never closes its end: the client gives it the close timeout
    (1 s), then aborts the connection, pings or not (none here: ping_interval 0)."""
    def oversize(conn, stop):
        upgrade(conn)
        conn.sendall(text_frame(CONNECTED))
        conn.sendall(bytes([0x81, 127]) + struct.pack(">Q", 32 * 1024 * 1024) + b"[" * 1000)
        stop.wait(30)

    with RawServer(oversize) as server:
        handler = start_handler("alpaca", url=server.url, ping_interval=0, stale_after=0)
        bus.until(lambda _: len(disconnects(bus)) >= 2 and server.accepted >= 3,
                  what="two connections ended by an oversized frame")
    for status in disconnects(bus)[:2]:
        assert "1009" in status.message or "too big" in status.message, status.message
    assert handler.poll() is None


@pytest.mark.timeout(90)
def test_a_server_restarted_again_and_again_is_reconnected_every_time(
        spawn_child, start_handler, bus):
    port, sim = start_alpaca_sim(spawn_child)
    handler = start_handler("alpaca", port)
    bus.until(lambda _: bus.of(Trade), what="trades")
    for _ in range(3):
        mark = bus.mark()
        os.kill(sim.pid, signal.SIGKILL)
        sim.wait(timeout=5)
        _, sim = start_alpaca_sim(spawn_child, port)
        back = bus.until(lambda _: bus.resubscribed(mark), what="resubscribed after a restart")
        bus.until(lambda _: bus.of(Trade, back), what="trades after a restart")
    assert handler.poll() is None
    assert len({e.epoch for e in bus.of(Trade)}) == 1  # the same handler process throughout


@pytest.mark.timeout(60)
def test_when_every_server_fails_at_once_the_reconnects_are_bounded(
        spawn_child, start_handler, forwarder):
    """Three handlers on one simulator, which dies and stays dead: each retries with a growing
    backoff (0.05 s doubling, capped at 2 s), so over a 5 s window each makes a handful of
    attempts, not the thousands a refused connection allows without one."""
    port, sim = start_alpaca_sim(spawn_child)
    names = ["alpaca-1", "alpaca-2", "alpaca-3"]
    with BusLog(forwarder.subscribe, [f"heartbeat.{n}" for n in names]) as beats:
        for name in names:
            start_handler("alpaca", port, name=name, backoff_max=2.0)
        at_start = beats.until(lambda _: connects(beats, names, lambda c: c >= 1),
                               what="every handler connected")
        os.kill(sim.pid, signal.SIGKILL)
        sim.wait(timeout=5)
        killed = time.monotonic()
        first = beats.until(lambda _: connects(beats, names, lambda c: True, after=killed + 1),
                            what="heartbeats a second after the kill", timeout=10)
        last = beats.until(lambda _: connects(beats, names, lambda c: True, after=killed + 6),
                           what="heartbeats six seconds after the kill", timeout=15)
    attempts = {n: last[n] - first[n] for n in names}
    # in 5 s, waits of at least half of 0.05 * 2^k capped at 2: at most ~8 attempts each
    assert all(1 <= a <= 10 for a in attempts.values()), attempts
    assert all(at_start[n] >= 1 for n in names)


def connects(beats: BusLog, names: list[str], ok, after: float = 0.0) -> dict[str, float] | None:
    """Each handler's `connects` metric in its latest heartbeat received after `after`
    (monotonic time, as the BusLog collects), once every one has one and `ok` holds."""
    result = {}
    for name in names:
        beat = beats.heartbeat(name)
        if beat is None or time.monotonic() < after:
            return None
        result[name] = beat.metric("connects")
    return result if all(ok(c) for c in result.values()) else None


# --- the provider --------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_alpaca_connection_limit_406_is_said_and_retried_while_the_first_streams(
        spawn_child, start_handler, bus):
    port, _ = start_alpaca_sim(spawn_child, max_connections=1)
    start_handler("alpaca", port, name="alpaca")
    bus.until(lambda _: bus.of(Trade), what="the first handler streaming")
    second = start_handler("alpaca", port, name="alpaca-2")
    mark = bus.mark()
    bus.until(lambda _: [c for c in bus.state_codes(mark) if c == ("error", 406)][1:],
              what="two 406 errors (the second handler retries)")
    bus.until(lambda _: bus.of(Trade, mark), what="the first handler still streaming")
    assert second.poll() is None


@pytest.mark.timeout(60)
def test_alpaca_symbol_limit_405_is_said_and_the_handler_stays_up(spawn_child, start_handler, bus):
    port, _ = start_alpaca_sim(spawn_child, symbol_limit=1)
    handler = start_handler("alpaca", port, symbols=["AAPL", "MSFT"])
    bus.until(lambda _: ("error", 405) in bus.state_codes(), what="error 405")
    beat = bus.until(lambda _: (b := bus.heartbeat("alpaca")) and
                     b.metric("provider_errors", code="405") >= 1 and b,
                     what="provider_errors{code=405} counted")
    assert beat and handler.poll() is None


@pytest.mark.timeout(60)
def test_an_unknown_symbol_is_subscribed_and_the_others_stream(spawn_child, start_handler, bus):
    port, _ = start_alpaca_sim(spawn_child)
    handler = start_handler("alpaca", port, symbols=["AAPL", "ZZZZQ"])
    bus.until(lambda _: len(bus.of(Trade)) >= 20, what="AAPL trades")
    assert "subscribed" in bus.states() and "error" not in bus.states()
    assert {e.symbol for e in bus.of(Trade) + bus.of(Quote)} == {"AAPL"}
    subs = control(port, "stats")["subscriptions"]
    assert any("ZZZZQ" in str(s) for s in subs), subs
    assert handler.poll() is None


@pytest.mark.timeout(60)
def test_a_burst_of_ten_times_the_rate_is_published_whole(spawn_child, start_handler, bus):
    port, _ = start_alpaca_sim(spawn_child, rate=200)
    handler = start_handler("alpaca", port)
    bus.until(lambda _: len(bus.of(Trade)) >= 5, what="trades")
    mark = bus.mark()
    control(port, "burst", count=2000)  # ten seconds' worth, at once
    bus.until(lambda _: len(bus.of(Trade, mark)) + len(bus.of(Quote, mark)) >= 2000,
              what="the burst on the bus")
    assert bus.sub.gaps == 0 and not disconnects(bus, mark)
    assert handler.poll() is None


@pytest.mark.timeout(60)
def test_polygon_max_connections_is_said_and_the_handler_stays_up(
        spawn_child, start_handler, forwarder, monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, "PKFAULT")
    monkeypatch.setenv("TM_TEST_POLYGON_KEY", "PKFAULT")
    sim = start_sim(spawn_child, key_env=SIM_KEY_ENV, symbols=["AAPL"], rate=100,
                    max_connections=1)
    with BusLog(forwarder.subscribe, ["status.polygon", "trade.polygon"]) as log:
        first = start_handler("polygon", sim.port, channels=["T"], key_env="TM_TEST_POLYGON_KEY",
                              backoff_min=0.2, backoff_max=1.0)
        log.until(lambda _: log.of(Trade), what="polygon trades")
        mark = log.mark()
        sim.control("error", code="max_connections")
        log.until(lambda _: [s for s in log.of(Status, mark) if s.state == "error"
                             and "max" in s.message.lower()], what="a max_connections error")
        log.until(lambda _: log.resubscribed(mark), what="reconnected")
        log.until(lambda _: log.of(Trade, log.resubscribed(mark)), what="trades again")
    assert first.poll() is None
