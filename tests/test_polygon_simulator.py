"""The Polygon simulator, as a real process on a real port, speaks the documented protocol,
and the official client (massive, formerly polygon-api-client) reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from typing import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tickmesh.runtime.settings import read
from tickmesh.handlers.polygon.sim.server import SimSettings
from tests.conftest import free_port
from tests.polygon_sim import SIM_KEY_ENV, Sim, start_sim
from tests.simcontrol import serving
from tests.waiting import wait_until

KEY = "sim-key"


def recv_json(ws: ClientConnection, timeout: float = 5.0) -> list:
    return json.loads(ws.recv(timeout=timeout))


def statuses(frame: list) -> list[tuple[str, str]]:
    return [(m["status"], m["message"]) for m in frame]


@contextmanager
def open_session(sim: Sim, key: str = KEY) -> Iterator[ClientConnection]:
    """A connection that has seen `connected` and sent its auth request."""
    with connect(sim.url) as ws:
        assert statuses(recv_json(ws)) == [("connected", "Connected Successfully")]
        ws.send(json.dumps({"action": "auth", "params": key}))
        yield ws


def data_until(ws: ClientConnection, enough, timeout: float = 10.0) -> list[dict]:
    """Data messages (statuses skipped) until enough(messages) holds."""
    messages: list[dict] = []

    def more() -> bool:
        messages.extend(m for m in recv_json(ws) if m["ev"] != "status")
        return enough(messages)

    wait_until(more, timeout=timeout, what="data from the simulator")
    return messages


@pytest.fixture
def sim(spawn_child, monkeypatch) -> Sim:
    monkeypatch.setenv(SIM_KEY_ENV, KEY)
    return start_sim(spawn_child, key_env=SIM_KEY_ENV, symbols=["AAPL", "MSFT", "BRK.B"],
                     rate=200, seed=7)


def test_handshake_subscribe_and_batched_data(sim):
    with open_session(sim) as ws:
        assert statuses(recv_json(ws)) == [("auth_success", "authenticated")]
        ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL,Q.AAPL,A.*"}))
        acks = [recv_json(ws) for _ in range(3)]
        assert [statuses(a) for a in acks] == [
            [("success", f"subscribed to: {t}")] for t in ("T.AAPL", "Q.AAPL", "A.*")]
        got = data_until(ws, lambda ms: {"T", "Q", "A"} <= {m["ev"] for m in ms})
    assert {(m["ev"], m["sym"]) for m in got if m["ev"] in "TQ"} <= {("T", "AAPL"), ("Q", "AAPL")}
    trade = next(m for m in got if m["ev"] == "T")
    assert {"sym", "x", "i", "z", "p", "s", "t", "q"} <= trade.keys() and isinstance(trade["i"], str)
    quote = next(m for m in got if m["ev"] == "Q")
    assert {"bx", "bp", "bs", "ax", "ap", "as", "t", "q", "z"} <= quote.keys()
    bar = next(m for m in got if m["ev"] == "A")
    assert bar["e"] - bar["s"] == 1000 and bar["l"] <= bar["o"] <= bar["h"]
    assert 10**12 < trade["t"] < 10**13  # Unix milliseconds


def test_several_events_arrive_in_one_frame(sim):
    with open_session(sim) as ws:
        ws.send(json.dumps({"action": "subscribe", "params": "Q.*,T.*"}))
        wait_until(lambda: len([m for m in recv_json(ws) if m["ev"] != "status"]) > 1,
                   timeout=10, what="a frame with several events")


def test_unsubscribe_stops_the_topic(sim):
    with open_session(sim) as ws:
        ws.send(json.dumps({"action": "subscribe", "params": "Q.MSFT"}))
        data_until(ws, lambda ms: bool(ms))
        ws.send(json.dumps({"action": "unsubscribe", "params": "Q.MSFT"}))
        wait_until(lambda: ("success", "unsubscribed to: Q.MSFT") in statuses(
            [m for m in recv_json(ws) if m["ev"] == "status"]), timeout=5, what="the unsubscribe ack")
        assert sim.stats()["subscriptions"] == [[]]


def test_wrong_key_is_refused_and_closed(sim):
    with open_session(sim, key="wrong") as ws:
        assert statuses(recv_json(ws)) == [("auth_failed", "authentication failed")]
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd.code == 1008
    assert sim.stats()["counters"]['sim_errors_sent{code="auth_failed"}'] == 1


def test_the_key_comes_only_from_the_environment(monkeypatch):
    monkeypatch.setenv(SIM_KEY_ENV, KEY)
    assert read(SimSettings, {"key_env": SIM_KEY_ENV}).key_env == SIM_KEY_ENV
    monkeypatch.delenv(SIM_KEY_ENV)
    with pytest.raises(ValueError, match="settings.key_env: expected the name of an environment"):
        read(SimSettings, {"key_env": SIM_KEY_ENV})
    with pytest.raises(ValueError, match="settings.key: unknown key"):
        read(SimSettings, {"key": KEY})


def test_no_auth_times_out(spawn_child):
    sim = start_sim(spawn_child, auth_timeout=0.3)
    with connect(sim.url) as ws:
        recv_json(ws)  # connected
        assert statuses(recv_json(ws))[0] == ("auth_timeout", "No authentication request received.")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd.code == 1008


def test_requests_before_auth_and_garbage_are_answered_not_fatal(sim):
    with connect(sim.url) as ws:
        recv_json(ws)
        ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL"}))
        assert statuses(recv_json(ws)) == [("error", "not authorized")]
        ws.send("{{{ garbage")
        assert recv_json(ws)[0]["status"] == "error"
        ws.send(json.dumps({"action": "auth", "params": KEY}))
        assert statuses(recv_json(ws)) == [("auth_success", "authenticated")]
        ws.send(json.dumps({"action": "subscribe", "params": "X.AAPL"}))
        assert statuses(recv_json(ws)) == [("error", "invalid subscription: X.AAPL")]
    counters = sim.stats()["counters"]
    assert counters['bad_input{reason="not_authorized"}'] == 1
    assert counters['bad_input{reason="bad_request"}'] == 1
    assert counters['bad_input{reason="bad_topic"}'] == 1


def test_one_connection_too_many_closes_the_oldest(spawn_child):
    sim = start_sim(spawn_child, max_connections=1)
    with open_session(sim, key="k") as first, open_session(sim, key="k") as second:
        assert statuses(recv_json(first)) == [("auth_success", "authenticated")]
        assert statuses(recv_json(second)) == [("auth_success", "authenticated")]
        assert statuses(recv_json(first)) == [
            ("max_connections", "Maximum number of connections exceeded.")]
        with pytest.raises(ConnectionClosed) as info:
            first.recv(timeout=5)
        assert info.value.rcvd.code == 1008
        second.send(json.dumps({"action": "subscribe", "params": "T.AAPL"}))
        assert statuses(recv_json(second)) == [("success", "subscribed to: T.AAPL")]


def test_other_paths_are_not_found(sim):
    with pytest.raises(InvalidStatus) as info, connect(f"ws://127.0.0.1:{sim.port}/crypto"):
        pass
    assert info.value.response.status_code == 404


def test_drop_closes_without_a_close_frame(sim):
    with open_session(sim) as ws:
        recv_json(ws)
        assert sim.control("drop")["connections"] == 1
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=5)
    assert info.value.rcvd is None
    wait_until(lambda: sim.stats()["connections"] == 0, timeout=5, what="the drop")


def test_replay_sends_recorded_frames_filtered(spawn_child, tmp_path):
    frames = [
        [{"ev": "T", "sym": "AAPL", "x": 4, "i": "1", "p": 1.5, "s": 10, "t": 1, "q": 1},
         {"ev": "T", "sym": "MSFT", "x": 4, "i": "2", "p": 2.5, "s": 10, "t": 2, "q": 1}],
        [{"ev": "Q", "sym": "AAPL", "bx": 1, "bp": 1.0, "bs": 1, "ax": 2, "ap": 1.1, "as": 1, "t": 3}],
    ]
    recording = tmp_path / "frames.jsonl"
    recording.write_text("\n".join([json.dumps(frames[0]), "garbage!", json.dumps(frames[1])]) + "\n")
    sim = start_sim(spawn_child, replay=str(recording), rate=50)
    with open_session(sim) as ws:
        recv_json(ws)
        ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL,Q.AAPL"}))
        received = [ws.recv(timeout=5) for _ in range(5)][2:]
    assert json.loads(received[0]) == frames[0][:1]  # MSFT filtered out
    assert received[1] == "garbage!"  # sent as recorded
    assert json.loads(received[2]) == frames[1]


def test_cli_runs_standalone(spawn):
    port = free_port()
    code = f"from tickmesh.handlers.polygon.sim.server import cli; cli(['--port', '{port}', '--symbols', 'ZZZ'])"
    spawn([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    wait_until(lambda: serving(port), timeout=15, what="the standalone simulator")
    sim = Sim(port)
    assert sim.stats()["connections"] == 0
    with open_session(sim, key="anything") as ws:
        assert statuses(recv_json(ws)) == [("auth_success", "authenticated")]
        ws.send(json.dumps({"action": "subscribe", "params": "T.ZZZ"}))
        recv_json(ws)
        assert {m["sym"] for m in data_until(ws, lambda ms: bool(ms))} == {"ZZZ"}


# --- the official client ---------------------------------------------------------------------

OFFICIAL_CLIENT = textwrap.dedent("""
    import json, sys
    from massive import WebSocketClient
    from massive.exceptions import AuthError

    port, key = sys.argv[1], sys.argv[2]
    client = WebSocketClient(api_key=key, feed=f"127.0.0.1:{port}", market="stocks",
                             secure=False, subscriptions=["T.AAPL", "Q.AAPL"], max_reconnects=0)
    seen = {}

    def handle(messages):
        for m in messages:
            kind = type(m).__name__
            seen[kind] = seen.get(kind, 0) + 1
            print(json.dumps({"kind": kind, "symbol": m.symbol, "timestamp": m.timestamp}), flush=True)
        if seen.get("EquityTrade", 0) >= 3 and seen.get("EquityQuote", 0) >= 3:
            raise SystemExit(0)

    try:
        client.run(handle)
    except AuthError as exc:
        print(json.dumps({"auth_error": str(exc)}), flush=True)
""")


def run_official_client(spawn, sim: Sim, key: str) -> list[dict]:
    proc = spawn([sys.executable, "-c", OFFICIAL_CLIENT, str(sim.port), key],
                 stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    return [json.loads(line) for line in out.splitlines()]


def test_official_client_reads_trades_and_quotes(spawn, sim):
    lines = run_official_client(spawn, sim, KEY)
    kinds = {(line["kind"], line["symbol"]) for line in lines}
    assert kinds == {("EquityTrade", "AAPL"), ("EquityQuote", "AAPL")}
    assert all(10**12 < line["timestamp"] < 10**13 for line in lines)


def test_official_client_sees_a_bad_key(spawn, sim):
    assert run_official_client(spawn, sim, "wrong") == [{"auth_error": "authentication failed"}]
