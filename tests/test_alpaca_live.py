"""The Alpaca handler and simulator as real processes on loopback: forwarder, simulator,
handler, and a bus subscriber (or another WebSocket client) in the test."""

from __future__ import annotations

import json
import sys
from typing import Callable

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tickmesh.bus import Heartbeat, Quote, Status, Trade
from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim.market import BLAST_SYMBOLS
from tests import simulators
from tests.buslog import BusLog
from tests.conftest import free_port
from tests.simcontrol import control
from tests.waiting import wait_until

SIM = "tickmesh.handlers.alpaca.sim.server"
HANDLER_SETTINGS = {"symbols": ["AAPL", "BRK.B"]}
BUS_PATTERNS = ["trade.alpaca", "quote.alpaca", "status.alpaca"]


def start_simulator(spawn_child, port: int | None = None, **settings) -> int:
    return simulators.start(spawn_child, SIM, "alpaca-sim", port, settings)[0]


# --- the handler ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_normalized_trades_and_quotes_arrive(spawn_child, start_handler, bus, encoding):
    port = start_simulator(spawn_child, rate=1000, symbols=["AAPL", "MSFT", "BRK.B"])
    start_handler("alpaca", port, encoding=encoding)
    bus.until(lambda ev: len(bus.of(Trade)) >= 5 and len(bus.of(Quote)) >= 5,
                   what="trades and quotes")
    trades, quotes = bus.of(Trade), bus.of(Quote)
    assert {e.symbol for e in trades + quotes} <= {"AAPL", "BRK.B"}  # never MSFT
    for trade in trades:
        assert trade.provider == "alpaca" and trade.price > 0 and trade.size > 0
        assert trade.trade_id.isdigit() and trade.exchange and "@" in trade.conditions
        assert 0 < trade.ts_recv - trade.ts_event < 5 * wire.NS
    for quote in quotes:
        assert 0 < quote.bid_price < quote.ask_price and quote.bid_exchange and quote.ask_exchange
    # nanosecond timestamps survive: not rounded to microseconds
    assert any(e.ts_event % 1000 for e in trades + quotes)


def streaming(bus: BusLog, since: int = 0) -> None:
    bus.until(lambda ev: any(isinstance(e, Trade | Quote) for e in ev[since:]),
              what="trades or quotes")


def reconnected(bus: BusLog, since: int) -> list[Status]:
    """Wait for a disconnect, a new connection all the way to subscribed and fresh data; the
    statuses since `since`."""
    resubscribed = bus.until(lambda _: bus.resubscribed(since),
                             what="a reconnect all the way to subscribed")
    streaming(bus, resubscribed)
    return bus.of(Status, since)


def test_reconnects_and_resubscribes_after_a_dropped_connection(spawn_child, start_handler, bus):
    port = start_simulator(spawn_child, rate=500)
    start_handler("alpaca", port)
    streaming(bus)
    dropped = bus.mark()
    assert control(port, "drop")["connections"] == 1
    states = [s.state for s in reconnected(bus, dropped)]
    assert states[:5] == ["disconnected", "connecting", "connected", "authenticated", "subscribed"]
    assert len({e.epoch for e in bus.events}) == 1  # one handler process throughout
    assert control(port, "stats")["counters"]['sim_controls{action="drop"}'] == 1


def test_stale_connection_is_dropped_and_replaced(spawn_child, start_handler, bus):
    port = start_simulator(spawn_child, rate=500)
    start_handler("alpaca", port, stale_after=0.4, ping_interval=30)
    streaming(bus)
    quieted = bus.mark()
    control(port, "quiet", seconds=30)
    disconnect = next(s for s in reconnected(bus, quieted) if s.state == "disconnected")
    assert "stale" in disconnect.message


def test_unanswered_pings_end_the_connection(spawn_child, start_handler, bus):
    port = start_simulator(spawn_child, rate=500)
    start_handler("alpaca", port, stale_after=0, ping_interval=0.2, ping_timeout=0.3)
    streaming(bus)
    stalled = bus.mark()
    control(port, "stall", seconds=30)
    disconnect = next(s for s in reconnected(bus, stalled) if s.state == "disconnected")
    assert "ping timeout" in disconnect.message


def test_wrong_keys_give_error_402_and_a_growing_backoff(
        spawn_child, start_handler, bus, monkeypatch):
    monkeypatch.setenv("TEST_SIM_KEY", "right-key")
    monkeypatch.setenv("TEST_SIM_SECRET", "right-secret")
    monkeypatch.setenv("TEST_ALPACA_KEY", "wrong-key")
    monkeypatch.setenv("TEST_ALPACA_SECRET", "wrong-secret")
    port = start_simulator(spawn_child, key_env="TEST_SIM_KEY", secret_env="TEST_SIM_SECRET")
    start_handler("alpaca", port, key_env="TEST_ALPACA_KEY", secret_env="TEST_ALPACA_SECRET",
                  backoff_min=0.05, backoff_max=10)

    def attempts(events):
        return [e.ts_event for e in events if isinstance(e, Status) and e.state == "connecting"]

    bus.until(lambda ev: len(attempts(ev)) >= 6, what="six connection attempts")
    errors = [e for e in bus.of(Status) if e.state == "error"]
    assert errors and all((e.code, e.message) == (402, "auth failed") for e in errors)
    assert "subscribed" not in bus.states()
    times = attempts(bus.events)[:6]
    gaps = [(b - a) / wire.NS for a, b in zip(times, times[1:])]
    # equal jitter: a wait is at least half its ceiling, which doubles per attempt, so each gap
    # is longer than the one two attempts before, whatever the jitter
    assert all(later > earlier for earlier, later in zip(gaps, gaps[2:])), gaps
    assert gaps[-1] > 4 * gaps[0] and sum(gaps) > 0.025 + 0.05 + 0.1 + 0.2 + 0.4, gaps


RECORDING = [
    '[{"T":"success","msg":"connected"}]',
    '[{"T":"t","S":"AAPL","i":96921,"x":"D","p":126.55,"s":1,"t":"2021-02-22T15:51:44.208Z",'
    '"c":["@","I"],"z":"C"},{"T":"b","S":"AAPL","o":126.5,"h":126.6,"l":126.4,"c":126.55,"v":100,'
    '"t":"2021-02-22T15:51:00Z","n":3,"vw":126.5}]',
    "",
    '[{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
    '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"},'
    '{"T":"t","S":"MSFT","i":1,"x":"V","p":1.0,"s":1,"t":"2021-02-22T15:51:45Z","c":["@"],'
    '"z":"C"}]',
    '[{"T":"t","S":"NOT|ATOPIC","i":2,"x":"V","p":1.0,"s":1,"t":"2021-02-22T15:51:46Z"}]',
]


@pytest.mark.parametrize("encoding", ["msgpack", "json"])
def test_replay_of_a_recorded_file(spawn_child, start_handler, forwarder, tmp_path, encoding):
    recording = tmp_path / "alpaca.jsonl"
    recording.write_text("\n".join(RECORDING) + "\n")
    bus = BusLog(forwarder.subscribe, ["trade.alpaca", "quote.alpaca", "heartbeat.alpaca"])
    # The handler starts first and retries until the simulator listens: the replay is sent
    # once, and a publisher's very first messages could leave before the forwarder has passed
    # it the subscriptions.
    port = free_port()
    start_handler("alpaca", port, symbols=["*"], encoding=encoding)
    start_simulator(spawn_child, port, replay=str(recording), rate=1000)

    def malformed(events):
        return [e for e in events if isinstance(e, Heartbeat) and e.metric("bad_input", reason="unpublishable")]

    bus.until(malformed, what="the unpublishable symbol to be counted")
    assert [e.symbol for e in bus.of(Trade)] == ["AAPL", "MSFT"]
    trade, quote = bus.of(Trade)[0], bus.of(Quote)[0]
    assert (trade.symbol, trade.ts_event, trade.price, trade.size, trade.trade_id, trade.exchange,
            trade.conditions) == ("AAPL", 1614009104208000000, 126.55, 1.0, "96921", "D",
                                  ["@", "I"])
    assert (quote.symbol, quote.ts_event, quote.bid_price, quote.bid_size, quote.bid_exchange,
            quote.ask_price, quote.ask_size, quote.ask_exchange) == (
        "AMD", 1614009105335689322, 87.66, 1.0, "U", 87.68, 4.0, "Q")
    bus.close()


# --- the simulator, seen by other clients --------------------------------------------------

ALPACA_PY_CLIENT = """
import json, os, sys
from alpaca.data.live import StockDataStream
url, wanted = sys.argv[1], int(sys.argv[2])
seen = {"trade": 0, "quote": 0}
stream = StockDataStream("some-key", "some-secret", url_override=url)

def report(kind, item, **fields):
    seen[kind] += 1
    line = {"kind": kind, "symbol": item.symbol, "ts": item.timestamp.isoformat(), **fields}
    print(json.dumps(line), flush=True)
    if min(seen.values()) >= wanted:
        os._exit(0)

async def on_trade(t):
    report("trade", t, price=t.price, size=t.size, exchange=t.exchange, id=t.id)

async def on_quote(q):
    report("quote", q, bid=q.bid_price, ask=q.ask_price)

stream.subscribe_trades(on_trade, "AAPL")
stream.subscribe_quotes(on_quote, "AAPL", "MSFT")
stream.run()
"""


def test_alpaca_py_reads_the_simulator(spawn_child, spawn):
    port = start_simulator(spawn_child, rate=1000, symbols=["AAPL", "MSFT", "NVDA"])
    client = spawn([sys.executable, "-c", ALPACA_PY_CLIENT, f"ws://127.0.0.1:{port}/v2/iex", "5"],
                   stdout=-1, stderr=-1, text=True)
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    trades = [x for x in lines if x["kind"] == "trade"]
    quotes = [x for x in lines if x["kind"] == "quote"]
    assert len(trades) >= 5 and len(quotes) >= 5
    assert {x["symbol"] for x in trades} == {"AAPL"}
    assert {x["symbol"] for x in quotes} <= {"AAPL", "MSFT"}
    assert all(x["price"] > 0 and x["size"] > 0 and x["exchange"] for x in trades)
    assert all(0 < x["bid"] < x["ask"] for x in quotes)
    assert all(x["ts"].endswith("+00:00") for x in lines)


def _handshake(ws: ClientConnection, channels: dict, *, decode: Callable = json.loads) -> dict:
    assert decode(ws.recv()) == [{"T": "success", "msg": "connected"}]
    ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
    assert decode(ws.recv()) == [{"T": "success", "msg": "authenticated"}]
    ws.send(json.dumps({"action": "subscribe", **channels}))
    (reply,) = decode(ws.recv())
    return reply


def test_json_mode_frames_as_a_plain_client_sees_them(spawn_child):
    port = start_simulator(spawn_child, rate=1000, symbols=["AAPL", "MSFT"])
    with connect(f"ws://127.0.0.1:{port}/v2/test") as ws:
        reply = _handshake(ws, {"trades": ["AAPL"], "quotes": ["MSFT"]})
        assert reply["T"] == "subscription" and reply["trades"] == reply["corrections"] == ["AAPL"]
        frames = [ws.recv() for _ in range(20)]
    assert all(isinstance(f, str) and f.startswith('[{"T":') for f in frames)
    messages = [m for f in frames for m in json.loads(f)]
    assert {(m["T"], m["S"]) for m in messages} <= {("t", "AAPL"), ("q", "MSFT")}
    assert any(len(f) > 1 for f in map(json.loads, frames))  # several messages per frame
    for m in messages:
        assert m["t"].endswith("Z") and wire.parse_timestamp(m["t"]) > 0
        assert list(m)[0] == "T"


def test_msgpack_mode_uses_the_timestamp_extension(spawn_child):
    port = start_simulator(spawn_child, rate=1000, symbols=["AAPL"])
    headers = {"Content-Type": "application/msgpack"}
    with connect(f"ws://127.0.0.1:{port}/v2/iex", additional_headers=headers) as ws:
        reply = _handshake(ws, {"trades": ["AAPL"], "quotes": ["AAPL"]}, decode=msgpack.unpackb)
        assert reply["T"] == "subscription"
        frame = ws.recv()
    assert isinstance(frame, bytes)
    messages = msgpack.unpackb(frame)
    assert messages and all(isinstance(m["t"], msgpack.Timestamp) for m in messages)
    assert all(next(iter(m)) == "T" for m in messages)


def test_fragmented_subscribe_is_reassembled(spawn_child):
    port = start_simulator(spawn_child, rate=10)
    symbols = [f"SYM{i:05d}" for i in range(6000)]
    text = json.dumps({"action": "subscribe", "trades": symbols})
    with connect(f"ws://127.0.0.1:{port}/v2/iex", max_size=None) as ws:
        _handshake(ws, {"quotes": ["AAPL"]})
        ws.send(text[i:i + 32768] for i in range(0, len(text), 32768))  # continuation frames
        (reply,) = json.loads(ws.recv())
    assert reply["T"] == "subscription" and reply["trades"] == symbols


def test_auth_timeout_closes_the_connection(spawn_child):
    port = start_simulator(spawn_child, auth_timeout=0.3)
    with connect(f"ws://127.0.0.1:{port}/v2/iex") as ws:
        assert json.loads(ws.recv())[0]["msg"] == "connected"
        assert json.loads(ws.recv()) == [{"T": "error", "code": 404, "msg": "auth timeout"}]
        with pytest.raises(ConnectionClosed):
            ws.recv()


def test_unknown_path_is_refused(spawn_child):
    port = start_simulator(spawn_child)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{port}/v1/stocks")
    assert refused.value.response.status_code == 404


def test_blast_sends_prebuilt_frames_of_ten_trades(spawn_child):
    port = start_simulator(spawn_child, blast=40)
    headers = {"Content-Type": "application/msgpack"}
    with connect(f"ws://127.0.0.1:{port}/v2/iex", additional_headers=headers) as ws:
        _handshake(ws, {"trades": ["*"]}, decode=msgpack.unpackb)
        frames = [msgpack.unpackb(ws.recv()) for _ in range(40)]
    assert all(len(f) == 10 and all(m["T"] == "t" for m in f) for f in frames)
    assert {m["S"] for f in frames for m in f} <= set(BLAST_SYMBOLS)


SIM_CLI = [sys.executable, "-c",
           "import sys; from tickmesh.handlers.alpaca.sim.server import cli; cli(sys.argv[1:])"]


def test_cli_serves_the_given_symbols(spawn):
    port = free_port()
    spawn(SIM_CLI + ["--port", str(port), "--rate", "500", "--symbols", "XYZ,ABC"])
    wait_until(lambda: simulators.listening(port), timeout=10, what="the simulator to listen")
    with connect(f"ws://127.0.0.1:{port}/v2/iex") as ws:
        _handshake(ws, {"trades": ["*"], "quotes": ["*"]})
        symbols = {m["S"] for _ in range(10) for m in json.loads(ws.recv())}
    assert symbols <= {"XYZ", "ABC"} and symbols


def test_cli_rejects_bad_arguments(spawn):
    proc = spawn(SIM_CLI + ["--rate", "-3"], stderr=-1, text=True)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "rate" in err
