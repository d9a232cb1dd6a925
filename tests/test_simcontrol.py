"""The one test control (handlers.common.simcontrol), the same on every simulator: each started
as a real process, driven over HTTP on its own port while a plain client of the provider's own
protocol watches what it does. The markets are all but still (rate 0.01), so that whatever data
a client sees comes from the control. A stall is one behaviour at every WebSocket simulator
(handlers.common.simserver): everything held back, then sent, nothing lost."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tickmesh.handlers.common import simcontrol as shared
from tickmesh.handlers.common.simserver import OUTBOX_LIMIT
from tickmesh.handlers.ib.sim import wire as ib_wire
from tests import simulators
from tests.ib_sim import hold_client_id
from tests.simcontrol import control, request, serving

STILL = 0.01  # the simulators' rate: practically no data of their own
READ_TIMEOUT = 5.0
STALL_S = 1.0
EARLY_S = 0.05
"""How much earlier than asked a stall may end: the simulators' timers are of a millisecond."""


class AlpacaClient:
    """A plain WebSocket client, authenticated and subscribed to AAPL's trades and quotes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        for request_ in ({"action": "auth", "key": "k", "secret": "s"},
                         {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL"]}):
            self.ws.recv(timeout=READ_TIMEOUT)
            self.ws.send(json.dumps(request_))
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT))[0]["T"] == "subscription"

    def messages(self) -> list[dict]:
        """The messages of the next frame (ConnectionClosed once it is closed)."""
        return json.loads(self.ws.recv(timeout=READ_TIMEOUT))

    def data(self, messages: list[dict]) -> int:
        return sum(m["T"] in ("t", "q") for m in messages)

    def errors(self, messages: list[dict]) -> list[tuple[Any, str]]:
        return [(m["code"], m["msg"]) for m in messages if m["T"] == "error"]


class PolygonClient:
    """A plain WebSocket client, authenticated and subscribed to AAPL's trades."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.recv(timeout=READ_TIMEOUT)  # connected
        self.ws.send(json.dumps({"action": "auth", "params": "any-key"}))
        self.ws.recv(timeout=READ_TIMEOUT)  # auth_success
        self.ws.send(json.dumps({"action": "subscribe", "params": "T.AAPL"}))
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT))[0]["status"] == "success"

    def messages(self) -> list[dict]:
        return json.loads(self.ws.recv(timeout=READ_TIMEOUT))

    def data(self, messages: list[dict]) -> int:
        return sum(m["ev"] == "T" for m in messages)

    def errors(self, messages: list[dict]) -> list[tuple[Any, str]]:
        return [(m["status"], m["message"]) for m in messages if m["ev"] == "status"]


class CoinbaseClient:
    """A plain WebSocket client, subscribed to BTC-USD's matches."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                                 "channels": ["matches"]}))
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT))["type"] == "subscriptions"

    def messages(self) -> list[dict]:
        return [json.loads(self.ws.recv(timeout=READ_TIMEOUT))]

    def data(self, messages: list[dict]) -> int:
        return sum(m["type"] == "match" for m in messages)

    def errors(self, messages: list[dict]) -> list[tuple[Any, str]]:
        return [(m["message"], m["reason"]) for m in messages if m["type"] == "error"]


class KrakenClient:
    """A plain WebSocket client, subscribed to XBT/USD's trades."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT))["event"] == "systemStatus"
        self.ws.send(json.dumps({"event": "subscribe", "pair": ["XBT/USD"],
                                 "subscription": {"name": "trade"}}))
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT))["status"] == "subscribed"

    def messages(self) -> list:
        return [json.loads(self.ws.recv(timeout=READ_TIMEOUT))]

    def data(self, messages: list) -> int:
        return sum(isinstance(m, list) and m[-2] == "trade" for m in messages)

    def errors(self, messages: list) -> list[tuple[Any, str]]:
        return [(m["event"], m.get("errorMessage") or m.get("status", "")) for m in messages
                if isinstance(m, dict) and m["event"] in ("error", "systemStatus")]


class BinanceClient:
    """A plain WebSocket client of BTCUSDT's raw trade stream."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert json.loads(self.ws.recv(timeout=READ_TIMEOUT)) == {"result": ["btcusdt@trade"],
                                                                   "id": 1}

    def messages(self) -> list[dict]:
        return [json.loads(self.ws.recv(timeout=READ_TIMEOUT))]

    def data(self, messages: list[dict]) -> int:
        return sum(m.get("e") == "trade" for m in messages)

    def errors(self, messages: list[dict]) -> list[tuple[Any, str]]:
        return [(m["code"], m["msg"]) for m in messages if "code" in m]


class IbClient:
    """A bare TWS API socket, started as client 1 and subscribed to AAPL's tick-by-tick trades."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.sendall(ib_wire.encode(ib_wire.Out.REQ_TICK_BY_TICK_DATA, 7, 0, "AAPL", "STK",
                                         "", "", "", "", "SMART", "", "USD", "", "", "AllLast",
                                         0, 0))
        self.reader = ib_wire.FrameReader()

    def messages(self) -> list[list[str]]:
        """The messages of the next read, each as its fields (ConnectionClosed at the end)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                raise ConnectionClosed(None, None)
            payloads = self.reader.feed(data)
            if payloads:
                return [ib_wire.split_fields(payload) for payload in payloads]

    def data(self, messages: list[list[str]]) -> int:
        return sum(int(m[0]) == ib_wire.In.TICK_BY_TICK for m in messages)

    def errors(self, messages: list[list[str]]) -> list[tuple[Any, str]]:
        return [(int(m[3]), m[4]) for m in messages if int(m[0]) == ib_wire.In.ERR_MSG]


WebSocketClient = AlpacaClient | PolygonClient | CoinbaseClient | BinanceClient | KrakenClient
Client = WebSocketClient | IbClient


@contextmanager
def alpaca_client(port: int) -> Iterator[Client]:
    with connect(f"ws://127.0.0.1:{port}/v2/iex") as ws:
        yield AlpacaClient(ws)


@contextmanager
def polygon_client(port: int) -> Iterator[Client]:
    with connect(f"ws://127.0.0.1:{port}/stocks") as ws:
        yield PolygonClient(ws)


@contextmanager
def coinbase_client(port: int) -> Iterator[Client]:
    with connect(f"ws://127.0.0.1:{port}") as ws:
        yield CoinbaseClient(ws)


@contextmanager
def kraken_client(port: int) -> Iterator[Client]:
    with connect(f"ws://127.0.0.1:{port}") as ws:
        yield KrakenClient(ws)


@contextmanager
def binance_client(port: int) -> Iterator[Client]:
    with connect(f"ws://127.0.0.1:{port}/ws/btcusdt@trade") as ws:
        yield BinanceClient(ws)


@contextmanager
def ib_client(port: int) -> Iterator[Client]:
    with hold_client_id(port, 1) as sock:
        yield IbClient(sock)


SIMULATORS: dict[str, tuple[str, dict[str, Any], Callable[[int], ContextManager[Client]]]] = {
    "alpaca": ("tickmesh.handlers.alpaca.sim.server", {"symbols": ["AAPL"]}, alpaca_client),
    "polygon": ("tickmesh.handlers.polygon.sim.server", {"symbols": ["AAPL", "MSFT"]}, polygon_client),
    "coinbase": ("tickmesh.handlers.coinbase.sim.server", {"symbols": ["BTC-USD"]},
                 coinbase_client),
    "binance": ("tickmesh.handlers.binance.sim.server", {"symbols": ["BTC-USDT"]},
                binance_client),
    "ib": ("tickmesh.handlers.ib.sim.server", {"symbols": ["AAPL"]}, ib_client),
    "kraken": ("tickmesh.handlers.kraken.sim.server", {"symbols": ["BTC-USD"]}, kraken_client),
}
WEBSOCKET = ["alpaca", "binance", "coinbase", "kraken", "polygon"]
ERRORS = {  # an error code that keeps the connection open, what the client reads of it, and
    # an unknown code
    "alpaca": (406, (406, "connection limit exceeded"), "999"),
    "polygon": ("error", ("error", "simulated error"), "nope"),
    "coinbase": ("failed_subscribe", ("Failed to subscribe", "simulated"), "nope"),
    "binance": (2, (2, "Invalid request"), "4"),
    "kraken": ("malformed", ("error", "Malformed request"), "nope"),
    "ib": (1100, (1100, "Connectivity between IB and Trader Workstation has been lost."), "1"),
}
CLOSING_ERRORS = {  # an error code the real server closes the connection after, and what the
    # client reads of it (Binance has none)
    "alpaca": (402, (402, "auth failed")),
    "polygon": ("auth_failed", ("auth_failed", "authentication failed")),
    "coinbase": ("slow_consume", ("ErrSlowConsume", "simulated")),
    "ib": (326, (326, "Unable to connect as the client id is already in use. "
                      "Retry with a unique client id.")),
}


@pytest.fixture(params=sorted(SIMULATORS))
def provider(request) -> str:
    return request.param


@pytest.fixture
def port(spawn_child, provider: str) -> int:
    module, settings, _ = SIMULATORS[provider]
    return simulators.start(spawn_child, module, f"{provider}-sim", None,
                            {"rate": STILL, **settings}, ready=serving)[0]


@pytest.fixture
def client(port: int, provider: str) -> Iterator[Client]:
    with SIMULATORS[provider][2](port) as opened:
        yield opened


def until_seen(client: Client, enough: Callable[[list], bool], what: str) -> list:
    """Everything the client reads until `enough(all of it)`, within a deadline."""
    seen: list = []
    deadline = time.monotonic() + 10
    while not enough(seen):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {seen[-5:]}"
        seen += client.messages()
    return seen


def until_closed(client: Client) -> list:
    """What the client reads before the connection ends (within a deadline)."""
    seen: list = []
    deadline = time.monotonic() + 10
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            seen += client.messages()
    return [*seen, closed.value]


# --- every simulator -------------------------------------------------------------------------

def test_stats_answers_json_with_counters_and_subscriptions(port, client):
    stats = control(port, "stats")
    assert (stats["ok"], stats["action"], stats["connections"]) == (True, "stats", 1)
    assert len(stats["subscriptions"]) == 1 and stats["subscriptions"][0]
    assert stats["counters"]["sim_connections"] == 1


def test_drop_aborts_every_connection(port, client, provider):
    assert control(port, "drop")["connections"] == 1
    closed = until_closed(client)[-1]
    if provider != "ib":
        assert closed.rcvd is None  # no close frame
    assert control(port, "stats")["counters"]['sim_controls{action="drop"}'] == 1
    with SIMULATORS[provider][2](port):
        pass  # still serving


def test_error_delivers_the_providers_own_error(port, client, provider):
    code, error, unknown = ERRORS[provider]
    assert control(port, "error", code=code)["connections"] == 1
    until_seen(client, lambda seen: error in client.errors(seen), what=f"{error}")
    status, answer = request(port, "error", code=unknown)
    assert status == 400 and not answer["ok"] and "unknown" in answer["error"]
    assert control(port, "stats")["counters"]['sim_controls{action="error"}'] == 1
    control(port, "burst", count=1)
    until_seen(client, lambda seen: client.data(seen) >= 1, what="data: still open")


@pytest.mark.parametrize("provider", sorted(CLOSING_ERRORS))
def test_an_error_the_real_server_closes_after_closes(port, client, provider):
    code, error = CLOSING_ERRORS[provider]
    assert control(port, "error", code=code)["connections"] == 1
    seen = until_closed(client)
    assert error in client.errors(seen[:-1])


def test_burst_delivers_at_least_count_data_messages(port, client):
    assert control(port, "burst", count=300)["connections"] == 1
    until_seen(client, lambda seen: client.data(seen) >= 300, what="300 data messages")


def test_stall_and_quiet_are_applied_and_counted(port, client):
    assert control(port, "quiet", seconds=30)["connections"] == 1
    control(port, "burst", count=5)  # a burst is sent even to a quiet connection
    until_seen(client, lambda seen: client.data(seen) >= 5, what="a burst while quiet")
    assert control(port, "stall", seconds=0.1)["connections"] == 1
    counters = control(port, "stats")["counters"]
    assert counters['sim_controls{action="stall"}'] == counters['sim_controls{action="quiet"}'] == 1


def test_unknown_actions_and_bad_parameters_are_refused_in_json(port, client):
    status, answer = request(port, "explode")
    assert status == 404 and answer["ok"] is False and "explode" in answer["error"]
    assert {"stats", "drop", "stall", "quiet", "error", "burst"} <= set(answer["actions"])
    for action, params in [("stall", {}), ("stall", {"seconds": "-1"}), ("quiet", {"seconds": "x"}),
                           ("burst", {"count": "0"}), ("drop", {"now": "1"})]:
        status, answer = request(port, action, **params)
        assert status == 400 and answer["ok"] is False and answer["error"], (action, params)
    stats = control(port, "stats")
    assert stats["connections"] == 1 and stats["counters"]['bad_input{reason="control"}'] == 6
    control(port, "burst", count=1)
    until_seen(client, lambda seen: client.data(seen) >= 1, what="data: still serving")


# --- one stall: a slow network --------------------------------------------------------------

@pytest.mark.parametrize("provider", WEBSOCKET)
def test_a_stall_holds_everything_back_and_sends_it_when_it_ends(port, client):
    """Nothing is read (a ping waits) and nothing is sent for the stall's seconds; what the
    simulator sent meanwhile comes after it, all of it."""
    stalled = time.monotonic()
    assert control(port, "stall", seconds=STALL_S)["connections"] == 1
    assert control(port, "burst", count=50)["connections"] == 1  # a stalled connection too
    pong = client.ws.ping()
    until_seen(client, lambda seen: client.data(seen) >= 50, what="the burst, after the stall")
    assert time.monotonic() - stalled >= STALL_S - EARLY_S, "data came during the stall"
    assert pong.wait(READ_TIMEOUT) and client.ws.latency >= STALL_S / 2, "a ping was answered"
    control(port, "burst", count=1)
    until_seen(client, lambda seen: client.data(seen) >= 1, what="data at once, after it")
    assert "sim_slow_clients" not in control(port, "stats")["counters"]


@pytest.mark.parametrize("provider", ["binance", "coinbase", "kraken"])
def test_a_stall_longer_than_the_outbox_holds_ends_as_a_slow_client(port, client):
    """The outbox is bounded: what the stall holds back past OUTBOX_LIMIT frames (a burst sends
    a frame a trade here) disconnects the client as too slow, with the provider's goodbye."""
    control(port, "stall", seconds=STALL_S)
    control(port, "burst", count=OUTBOX_LIMIT + 1)
    until_closed(client)
    assert control(port, "stats")["counters"]["sim_slow_clients"] == 1


# --- IB: HTTP on the TWS API port -------------------------------------------------------------

def raw_http(port: int, data: bytes) -> bytes:
    """Send `data`, read until the simulator closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("provider", ["ib"])
def test_ib_answers_http_and_refuses_garbage_http(port):
    head, _, body = raw_http(port, b"GET /control/stats HTTP/1.1\r\nHost: x\r\n\r\n").partition(
        b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"application/json" in head
    assert json.loads(body)["connections"] == 0  # the control's own connection is no client
    for garbage in (b"GET nonsense\r\n\r\n", b"GET /control/stats HTTP/9\r\n\r\n",
                    b"GET " + bytes(range(256)) * 40):
        head, _, body = raw_http(port, garbage).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 Bad Request"), garbage[:30]
        assert json.loads(body)["ok"] is False
    hold_client_id(port, 5).close()  # still a TWS
    assert control(port, "stats")["counters"]['bad_input{reason="control"}'] == 3


@pytest.mark.parametrize("provider", ["ib"])
def test_ib_connectivity_and_bad_depth(port, client):
    control(port, "connectivity", online=0)
    until_seen(client, lambda seen: ERRORS["ib"][1] in client.errors(seen),
               what="error 1100")
    assert control(port, "stats")["online"] is False
    control(port, "connectivity", online=1)
    until_seen(client, lambda seen: 1102 in [code for code, _ in client.errors(seen)],
               what="error 1102")
    assert request(port, "connectivity", online="maybe")[0] == 400
    assert control(port, "bad-depth")["ok"]


def test_request_targets_are_parsed_without_a_server():
    assert shared.request_target(b"GET /control/stall?seconds=1 HTTP/1.1\r\n\r\n") == \
        "/control/stall?seconds=1"
    with pytest.raises(shared.ControlError):
        shared.request_target(b"POST /control/drop HTTP/1.1\r\n\r\n")
    counts: Counter = Counter()
    actions = shared.actions(stats=dict, drop=dict, stall=lambda seconds: {"s": seconds},
                             quiet=lambda seconds: {}, error=lambda code: {}, burst=lambda count: {})
    assert shared.answer("/control/stall?seconds=2.5", actions, counts) == (
        200, {"ok": True, "action": "stall", "s": 2.5})
    assert shared.answer("/control/stall?seconds=1&seconds=2", actions, counts).status == 400
    assert shared.answer("/control/nope", actions, counts).status == 404
    assert counts == {("sim_controls", "stall"): 1, ("bad_input", "control"): 2}
