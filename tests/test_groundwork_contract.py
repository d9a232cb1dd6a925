"""The protocol contract end to end (handlers.common.protocol): a hostile server's deeply
nested frame and a protocol that raises never end a handler's process or connection; timers,
HTTP requests, resubscribes and control requests over the bus all reach the protocol and its
answers reach the bus. Real processes, a real forwarder, real sockets."""

from __future__ import annotations

import json

import pytest

from tickmesh.bus import Control, Heartbeat, Publisher, Trade
from tests.buslog import BusLog
from tests.scripted_server import ScriptedServer

NESTED = "[" * 2000 + "]" * 2000  # ~4 KB: deeper than any JSON decoder goes
CLIENT = {"backoff_min": 0.05, "backoff_max": 0.5}


def _alpaca_script(message: str) -> list[str]:
    action = json.loads(message).get("action")
    if action == "auth":
        return [json.dumps([{"T": "success", "msg": "authenticated"}])]
    if action == "subscribe":
        trades = [{"T": "t", "S": "AAPL", "i": n, "x": "V", "p": 100.0 + n, "s": 10,
                   "t": "2026-12-01T15:00:00.123Z", "c": ["@"], "z": "C"} for n in (1, 2)]
        return [json.dumps([{"T": "subscription", "trades": ["AAPL"]}]), NESTED,
                json.dumps(trades)]
    return []


def _polygon_script(message: str) -> list[str]:
    request = json.loads(message)
    if request["action"] == "auth":
        return [json.dumps([{"ev": "status", "status": "auth_success", "message": "ok"}])]
    trades = [{"ev": "T", "sym": "AAPL", "p": 100.0 + n, "s": 10, "t": 1_764_600_000_000,
               "x": 4, "i": str(n), "c": [], "z": 3, "q": n} for n in (1, 2)]
    return [json.dumps([{"ev": "status", "status": "success",
                         "message": "subscribed to: T.AAPL"}]), NESTED, json.dumps(trades)]


HOSTILE = {
    "alpaca": ("tickmesh.handlers.alpaca.handler", _alpaca_script,
               [json.dumps([{"T": "success", "msg": "connected"}])],
               {"encoding": "json", "symbols": ["AAPL"], "channels": ["trades"]}, "/v2/iex"),
    "polygon": ("tickmesh.handlers.polygon.handler", _polygon_script,
                [json.dumps([{"ev": "status", "status": "connected", "message": "hi"}])],
                {"symbols": ["AAPL"], "channels": ["T"]}, "/stocks"),
}


@pytest.mark.parametrize("provider", sorted(HOSTILE))
def test_a_deeply_nested_frame_is_skipped_and_the_valid_trades_after_it_arrive(
        spawn_child, forwarder, provider):
    module, script, greeting, settings, path = HOSTILE[provider]
    with ScriptedServer(script, greeting) as server, \
            BusLog(forwarder.subscribe, [f"trade.{provider}", f"status.{provider}",
                                         f"heartbeat.{provider}"]) as bus:
        handler = spawn_child(module, provider, {"url": server.url + path, **CLIENT, **settings})
        bus.until(lambda _: len(bus.of(Trade)) >= 2, what="the trades after the nested frame")
        beat = bus.until(lambda _: next((b for b in reversed(bus.of(Heartbeat))
                                         if b.metric("bad_input", reason="malformed_frame"
                                                     if provider == "polygon" else "malformed")), None),
                         what="the nested frame counted as malformed")
        assert [t.price for t in bus.of(Trade)] == [101.0, 102.0]
        assert handler.poll() is None and beat.pid == handler.pid
        assert beat.metric("connects") == 1 and "disconnected" not in bus.states()


@pytest.fixture
def probe(spawn_child, forwarder):
    """The probe handler (tests/children/probe.py) on a scripted server: (server, bus, process)."""
    def script(message: str) -> list[str]:
        if message == "hello":
            return ["boom", "AAPL"]
        if message.startswith("resubscribe "):
            return [f"{message.split()[1]}-AGAIN"]
        return []

    with ScriptedServer(script, http={"/depth": b"0123456789"}) as server, \
            BusLog(forwarder.subscribe, ["trade.probe", "heartbeat.probe"]) as bus:
        process = spawn_child("tests.children.probe", "probe", {
            "url": server.url, "http_url": f"http://127.0.0.1:{server.port}/depth", **CLIENT})
        yield server, bus, process


def _symbols(bus: BusLog) -> list[str]:
    return [t.symbol for t in bus.of(Trade)]


def test_a_protocol_that_raises_loses_that_frame_only(probe):
    _server, bus, process = probe
    bus.until(lambda _: "AAPL" in _symbols(bus), what="the frame after the one that raised")
    beat = bus.until(lambda _: next((b for b in reversed(bus.of(Heartbeat))
                                     if b.metric("protocol_faults")), None),
                     what="the fault counted")
    assert beat.metric("protocol_faults") == 1 and beat.metric("connects") == 1
    assert process.poll() is None


def test_timers_and_http_requests_are_answered_through_the_protocol(probe):
    server, bus, _process = probe
    bus.until(lambda _: {"TIMER", "HTTP"} <= set(_symbols(bus)), what="a timer and an answer")
    http = next(t for t in bus.of(Trade) if t.symbol == "HTTP")
    assert (http.price, http.size) == (200.0, 10.0)
    assert server.http_requests == ["/depth?symbol=X"]


def test_a_control_request_over_the_bus_resubscribes_one_symbol(probe, forwarder):
    server, bus, _process = probe
    bus.until(lambda _: "AAPL" in _symbols(bus), what="the connection")
    publisher = Publisher(forwarder.publish)
    try:
        request = Control(provider="probe", symbol="X", ts_event=0, ts_recv=0, action="resync",
                          sender="test")
        bus.until(lambda _: publisher.publish(request) or "X-AGAIN" in _symbols(bus),
                  what="the resubscribe's reply and its answer")
        assert "RESUB-X" in _symbols(bus) and "resubscribe X" in server.received
        unknown = Control(provider="probe", symbol="X", ts_event=0, ts_recv=0, action="explode")
        publisher.publish(unknown)
        bus.until(lambda _: any(b.metric("bad_input", reason="control") >= 1
                                for b in bus.of(Heartbeat)), what="the unknown action counted")
    finally:
        publisher.close()
