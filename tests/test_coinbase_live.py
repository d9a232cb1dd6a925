"""The Coinbase handler and simulator as real processes on loopback: forwarder, simulator,
handler, and a bus subscriber (or a plain WebSocket client) in the test. Books are rebuilt
from the bus and compared with the simulator's true book (its /control/book) while its
market stands still (/control/quiet)."""

from __future__ import annotations

import json
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tickmesh.bus import BookDelta, BookSnapshot, Publisher, Status, Trade
from tickmesh.bus.events import Control
from tests import simulators
from tests.books import Book, implied_books
from tests.buslog import BusLog
from tests.conftest import free_port
from tests.simcontrol import control
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)
SIM = "tickmesh.handlers.coinbase.sim.server"
PRODUCTS = ["BTC-USD", "ETH-USD"]
HANDLER_SETTINGS = {"symbols": PRODUCTS}
BUS_PATTERNS = ["book_snapshot.coinbase", "book_delta.coinbase", "trade.coinbase",
                "status.coinbase", "heartbeat.coinbase"]


def start_simulator(spawn_child, **settings) -> int:
    settings = {"symbols": PRODUCTS, **settings}
    return simulators.start(spawn_child, SIM, "coinbase-sim", None, settings)[0]


# --- books ---------------------------------------------------------------------------------

def true_book(port: int, product: str) -> Book:
    answer = control(port, "book", product=product, depth=1000)
    return ({float(p): float(s) for p, s in answer["bids"]},
            {float(p): float(s) for p, s in answer["asks"]})


def books_equal_the_simulators(bus: BusLog, port: int, products=PRODUCTS) -> None:
    """Stop the market, then wait until every product's bus book is the true one."""
    control(port, "quiet", seconds=120)
    truth = {product: true_book(port, product) for product in products}
    bus.until(lambda ev: all(implied_books(ev).get(p) == truth[p] for p in products),
              what="the books on the bus to equal the simulator's", timeout=20)
    for bids, asks in truth.values():
        assert 50 <= len(bids) <= 100 and 50 <= len(asks) <= 100
        assert max(bids) < min(asks)


def snapshots(bus: BusLog, symbol: str, since: int = 0) -> list[BookSnapshot]:
    return [e for e in bus.of(BookSnapshot, since) if e.symbol == symbol]


def deltas(bus: BusLog, symbol: str, since: int = 0) -> list[BookDelta]:
    return [e for e in bus.of(BookDelta, since) if e.symbol == symbol]


def streaming(bus: BusLog, since: int = 0, count: int = 10) -> None:
    bus.until(lambda _: all(len(deltas(bus, p, since)) >= count for p in PRODUCTS),
              what=f"{count} deltas of every product")


# --- live ----------------------------------------------------------------------------------

def test_snapshot_then_deltas_rebuild_the_true_book(spawn_child, start_handler, bus):
    port = start_simulator(spawn_child)
    start_handler("coinbase", port)
    streaming(bus)
    bus.until(lambda _: len(bus.of(Trade)) >= 4, what="trades")
    for product in PRODUCTS:
        first = next(e for e in bus.events if isinstance(e, BookSnapshot | BookDelta)
                     and e.symbol == product)
        assert isinstance(first, BookSnapshot) and first.generation == 1
    books_equal_the_simulators(bus, port)
    for product in PRODUCTS:
        ids = [int(t.trade_id) for t in bus.of(Trade) if t.symbol == product]
        assert ids == list(range(ids[0], ids[0] + len(ids))) if ids else True
    assert {t.side for t in bus.of(Trade)} <= {"b", "s"}
    assert "subscribed" in bus.states()


def test_a_lost_message_resyncs_that_product_while_the_other_streams(
        spawn_child, start_handler, bus):
    port = start_simulator(spawn_child)
    start_handler("coinbase", port)
    streaming(bus)
    mark = bus.mark()
    lost = control(port, "gap", product="BTC-USD")["lost_trade_id"]
    bus.until(lambda _: any(s.generation == 2 for s in snapshots(bus, "BTC-USD", mark)),
              what="BTC-USD's new snapshot")
    resyncing = [s for s in bus.of(Status, mark) if s.state == "resyncing"]
    assert [s.symbol for s in resyncing] == ["BTC-USD"]
    assert str(lost) not in {t.trade_id for t in bus.of(Trade) if t.symbol == "BTC-USD"}
    streaming(bus, mark, count=20)  # ETH-USD never stopped
    assert snapshots(bus, "ETH-USD", mark) == []
    bus.until(lambda _: bus.metric("coinbase", "trades_missed") >= 1
              and bus.metric("coinbase", "resyncs", reason="trade_gap") >= 1,
              what="the loss counted")
    books_equal_the_simulators(bus, port)


def test_a_control_request_over_the_bus_resyncs(spawn_child, start_handler, bus, forwarder):
    port = start_simulator(spawn_child)
    start_handler("coinbase", port)
    streaming(bus)
    mark = bus.mark()
    publisher = Publisher(forwarder.publish)
    request = Control(provider="coinbase", symbol="ETH-USD", ts_event=0, ts_recv=0,
                      action="resync", sender="test")
    try:  # published until it arrives: the handler's control subscription may be joining
        bus.until(lambda _: publisher.publish(request) or snapshots(bus, "ETH-USD", mark),
                  what="ETH-USD's new snapshot")
    finally:
        publisher.close()
    assert snapshots(bus, "ETH-USD", mark)[0].generation >= 2
    assert ("resyncing", "ETH-USD") in [(s.state, s.symbol) for s in bus.of(Status, mark)]
    books_equal_the_simulators(bus, port)


def test_an_error_that_closes_is_reported_and_the_handler_reconnects(
        spawn_child, start_handler, bus):
    port = start_simulator(spawn_child)
    start_handler("coinbase", port)
    streaming(bus)
    mark = bus.mark()
    control(port, "error", code="slow_consume")
    bus.until(lambda _: bus.resubscribed(mark), what="a reconnect all the way to subscribed")
    assert ("error", 3) in bus.state_codes(mark)
    streaming(bus, bus.mark())


def test_a_delisted_product_is_refused_while_the_others_stream_and_retried_until_listed(
        spawn_child, start_handler, bus):
    """Issue 16: a subscribe naming one product the exchange does not list is refused as a
    whole; the feed must go on with the others on the same connection, say which product was
    refused, and retry it (here every 0.2 to 0.5 s) until the exchange lists it again."""
    port = start_simulator(spawn_child, symbols=PRODUCTS + ["SOL-USD"])
    control(port, "delist", product="SOL-USD")
    start_handler("coinbase", port, symbols=PRODUCTS + ["SOL-USD"], refused_retry=0.2,
                  refused_retry_max=0.5)
    streaming(bus)
    said = bus.until(lambda _: [s for s in bus.of(Status) if s.symbol == "SOL-USD"],
                     what="a Status for SOL-USD")
    assert [(s.state, s.code, s.message) for s in said] == [
        ("error", 1, "Failed to subscribe: SOL-USD is not a valid product")]
    bus.until(lambda _: bus.metric("coinbase", "symbols_refused", provider="coinbase") >= 2,
              what="the refusal and a retry's counted")
    mark = bus.mark()
    control(port, "relist", product="SOL-USD")
    bus.until(lambda _: snapshots(bus, "SOL-USD", mark), what="SOL-USD's snapshot")
    assert [(s.state, s.symbol) for s in bus.of(Status, mark)] == [("subscribed", "SOL-USD")]
    streaming(bus, bus.mark())
    assert "disconnected" not in bus.states()
    assert bus.metric("coinbase", "connects") == 1


# --- replay --------------------------------------------------------------------------------

T = "2024-03-01T12:00:00.%06dZ"


def recorded(i: int, **message) -> str:
    return json.dumps({**message, **({"time": T % i} if message["type"] != "snapshot" else {})})


def recording() -> tuple[list[str], dict[str, Book], list[tuple[str, str, str]]]:
    """Frames as Coinbase sends them, and the books and trades (symbol, id, side) they imply."""
    lines = [json.dumps({"type": "subscriptions", "channels": []})]
    books: dict[str, Book] = {}
    trades = []
    last_trade = {}
    for n, product in enumerate(["BTC-USD", "ETH-USD", "SOL-USD"]):
        base = 1000 * (n + 1)
        bids = [[f"{base - k}.00", f"{k + 1}.5"] for k in range(5)]
        asks = [[f"{base + 1 + k}.00", f"{k + 1}.25"] for k in range(5)]
        lines.append(json.dumps({"type": "snapshot", "product_id": product, "bids": bids,
                                 "asks": asks}))
        lines.append(recorded(1, type="last_match", trade_id=10, sequence=5, product_id=product,
                              maker_order_id="a", taker_order_id="b", size="0.1",
                              price=f"{base}.00", side="buy"))
        books[product] = ({float(p): float(s) for p, s in bids},
                          {float(p): float(s) for p, s in asks})
    for i in range(1, 30):
        product = ["BTC-USD", "ETH-USD", "SOL-USD"][i % 3]
        base = 1000 * (i % 3 + 1)
        bids, asks = books[product]
        price = float(base - i % 5)
        size = 0.0 if i % 4 == 0 else round(i * 0.1, 8)
        lines.append(recorded(i, type="l2update", product_id=product,
                              changes=[["buy", f"{price:.2f}", f"{size:.8f}"]]))
        if size:
            bids[price] = size
        else:
            bids.pop(price, None)
        if i % 2:
            side = "sell" if i % 3 else "buy"
            trade_id = last_trade[product] = last_trade.get(product, 10) + 1
            lines.append(recorded(i, type="match", trade_id=trade_id, sequence=100 + i,
                                  product_id=product, maker_order_id="a", taker_order_id="b",
                                  size="0.5", price=f"{base + 1}.00", side=side))
            trades.append((product, str(trade_id), "b" if side == "sell" else "s"))
    return lines, books, trades


def test_replay_of_a_recorded_file_gives_the_book_it_implies(
        spawn_child, start_handler, bus, tmp_path):
    lines, books, trades = recording()
    path = tmp_path / "coinbase.jsonl"
    path.write_text("\n".join(lines) + "\n")
    port = start_simulator(spawn_child, replay=str(path), symbols=PRODUCTS + ["SOL-USD"])
    start_handler("coinbase", port, stale_after=0)
    bus.until(lambda ev: all(implied_books(ev).get(p) == books[p] for p in PRODUCTS),
              what="the recorded books")
    wanted = [t for t in trades if t[0] in PRODUCTS]
    bus.until(lambda _: len(bus.of(Trade)) >= len(wanted), what="the recorded trades")
    assert [(t.symbol, t.trade_id, t.side) for t in bus.of(Trade)] == [
        t for t in trades if t[0] in PRODUCTS]
    assert all(e.symbol != "SOL-USD" for e in bus.events if hasattr(e, "generation"))


def test_hostile_frames_do_not_kill_the_handler(spawn_child, start_handler, bus, tmp_path):
    eth = ([["2999.00", "1"]], [["3001.00", "1"]])
    lines = [
        json.dumps({"type": "snapshot", "product_id": "BTC-USD", "bids": [["100.00", "1"]],
                    "asks": [["101.00", "1"]]}),
        json.dumps({"type": "snapshot", "product_id": "ETH-USD", "bids": eth[0],
                    "asks": eth[1]}),
        "this is not json {",
        '{"type":"l2update","product_id":"BTC-USD","changes":' + "[" * 50_000 + "]" * 50_000
        + "}",
        json.dumps({"type": "l2update", "product_id": "ETH-USD", "time": T % 1,
                    "changes": [["buy", "2999.50", "2"]]}),
        json.dumps({"type": "snapshot", "product_id": "BTC-USD", "bids": [["100.00", "NaN"]],
                    "asks": [["101.00", "1"]]}),
        json.dumps({"type": "match", "product_id": "ETH-USD", "trade_id": 1, "sequence": 1,
                    "time": T % 2, "size": "1", "price": "3001.00", "side": "sell"}),
        json.dumps({"type": "l2update", "product_id": "ETH-USD", "time": T % 3,
                    "changes": [["sell", "3001.00", "0.5"]]}),
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    port = start_simulator(spawn_child, replay=str(path))
    handler = start_handler("coinbase", port, stale_after=0)
    expected = ({2999.0: 1.0, 2999.5: 2.0}, {3001.0: 0.5})
    bus.until(lambda ev: implied_books(ev).get("ETH-USD") == expected,
              what="ETH-USD past the garbage")
    assert [t.trade_id for t in bus.of(Trade)] == ["1"]
    bus.until(lambda _: bus.metric("coinbase", "bad_input", reason="malformed_frame") >= 2
              and bus.metric("coinbase", "bad_input", reason="bad_size") >= 1,
              what="the garbage counted")
    assert ("resyncing", "BTC-USD") in [(s.state, s.symbol) for s in bus.of(Status)]
    assert handler.poll() is None
    assert bus.metric("coinbase", "protocol_faults") == 0


# --- the simulator's protocol ----------------------------------------------------------------

def test_a_client_that_never_subscribes_is_disconnected_after_5_s(spawn_child):
    port = start_simulator(spawn_child)
    url = f"ws://127.0.0.1:{port}"
    with connect(url) as silent, connect(url) as subscriber:
        opened = time.monotonic()
        subscriber.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                                    "channels": ["heartbeat"]}))
        assert json.loads(subscriber.recv(timeout=10))["type"] == "subscriptions"
        with pytest.raises(ConnectionClosed) as closed:
            silent.recv(timeout=30)
        assert time.monotonic() - opened >= 4.8
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        while True:  # the subscriber stays: heartbeats keep coming
            message = json.loads(subscriber.recv(timeout=10))
            if time.monotonic() - opened > 6:
                assert message["type"] == "heartbeat"
                break


def test_bad_requests_get_coinbase_errors(spawn_child):
    port = start_simulator(spawn_child)
    with connect(f"ws://127.0.0.1:{port}") as ws:
        for request, reason in [
            ({"product_ids": ["XBT-USD"], "channels": ["matches"]},
             "XBT-USD is not a valid product"),
            ({"product_ids": ["BTC-USD"], "channels": ["full2"]}, "full2 is not a valid channel"),
            ({"product_ids": ["BTC-USD"], "channels": []}, "No channels provided"),
            ({"product_ids": ["BTC-USD"], "channels": ["level2"]},
             "level2 channel requires authentication"),
        ]:
            ws.send(json.dumps({"type": "subscribe", **request}))
            assert json.loads(ws.recv(timeout=10)) == {
                "type": "error", "message": "Failed to subscribe", "reason": reason}
            if reason.endswith("is not a valid product"):  # then the subscriptions, unchanged
                assert json.loads(ws.recv(timeout=10)) == {"type": "subscriptions",
                                                           "channels": []}


def subscribe(ws, products: list[str], channels=("matches",)) -> list[dict]:
    """Send a subscribe; its answers: an error then the subscriptions, or the subscriptions."""
    ws.send(json.dumps({"type": "subscribe", "product_ids": products,
                        "channels": list(channels)}))
    answers = [json.loads(ws.recv(timeout=10))]
    while answers[-1]["type"] != "subscriptions":
        answers.append(json.loads(ws.recv(timeout=10)))
    return answers


def test_a_subscribe_naming_an_unknown_product_is_ignored_as_a_whole(spawn_child):
    """As Coinbase: the error names the product, the subscriptions that follow are unchanged
    (nothing of the request was subscribed), and the connection stays open."""
    port = start_simulator(spawn_child)
    with connect(f"ws://127.0.0.1:{port}") as ws:
        assert subscribe(ws, ["BTC-USD", "XBT-USD", "ETH-USD"]) == [
            {"type": "error", "message": "Failed to subscribe",
             "reason": "XBT-USD is not a valid product"},
            {"type": "subscriptions", "channels": []}]
        assert subscribe(ws, ["BTC-USD", "ETH-USD"]) == [{"type": "subscriptions", "channels": [
            {"name": "matches", "product_ids": ["BTC-USD", "ETH-USD"]}]}]


def test_a_delisted_product_is_refused_until_it_is_listed_again(spawn_child):
    port = start_simulator(spawn_child, symbols=PRODUCTS + ["SOL-USD"])
    assert control(port, "delist", product="SOL-USD")["delisted"] == ["SOL-USD"]
    with connect(f"ws://127.0.0.1:{port}") as ws:
        refused = subscribe(ws, ["SOL-USD"], ["level2_batch"])
        assert refused[0]["reason"] == "SOL-USD is not a valid product"
        assert control(port, "relist", product="SOL-USD")["delisted"] == []
        assert subscribe(ws, ["SOL-USD"], ["level2_batch"])[0]["channels"] == [
            {"name": "level2_batch", "product_ids": ["SOL-USD"]}]
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"


def test_the_cli_serves(spawn):
    port = free_port()
    spawn([sys.executable, "-m", "tickmesh.cli", "sim", "coinbase", "--port", str(port),
           "--symbols", "SOL-USD"])
    wait_until(lambda: simulators.listening(port), timeout=15, what="the simulator to listen")
    assert control(port, "book", product="SOL-USD", depth=3)["bids"]
