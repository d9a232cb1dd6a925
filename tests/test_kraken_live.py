"""The Kraken handler and simulator as real processes on loopback: forwarder, simulator,
handler, and a bus subscriber in the test. Books are rebuilt from the bus and compared with
the simulator's true book (its /control/book) while its market stands still (/control/quiet);
the `corrupt` control's bad checksum is noticed, counted and recovered from; a pair Kraken
does not know is refused alone; BTC-USD is the same market at Kraken's simulator as at
Coinbase's."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from tickmesh.bus import BookDelta, BookSnapshot, Quote, Status, Trade
from tickmesh.handlers.common.market import fair_price
from tests import simulators
from tests.books import Book, implied_books
from tests.buslog import BusLog
from tests.simcontrol import control
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)
SIM = "tickmesh.handlers.kraken.sim.server"
PAIRS = ["BTC-USD", "ETH-USD", "SOL-USD"]
HANDLER_SETTINGS = {"symbols": PAIRS}
BUS_PATTERNS = ["book_snapshot.kraken", "book_delta.kraken", "trade.kraken", "quote.kraken",
                "status.kraken", "heartbeat.kraken"]


def start_simulator(spawn_child, **settings) -> int:
    return simulators.start(spawn_child, SIM, "kraken-sim", None,
                            {"symbols": PAIRS, **settings})[0]


def true_book(port: int, symbol: str, depth: int) -> Book:
    answer = control(port, "book", pair=symbol, depth=depth)
    return ({float(p): float(v) for p, v in answer["bids"]},
            {float(p): float(v) for p, v in answer["asks"]})


def books_equal_the_simulators(bus: BusLog, port: int, depth: int) -> None:
    """Stop the market, then wait until every pair's bus book is the true one at the depth."""
    control(port, "quiet", seconds=120)
    truth = {symbol: true_book(port, symbol, depth) for symbol in PAIRS}
    bus.until(lambda ev: all(implied_books(ev).get(s) == truth[s] for s in PAIRS),
              what="the books on the bus to equal the simulator's", timeout=20)
    for bids, asks in truth.values():
        assert len(bids) == len(asks) == depth and max(bids) < min(asks)


def streaming(bus: BusLog, since: int = 0, count: int = 10) -> None:
    bus.until(lambda _: all(len([e for e in bus.of(BookDelta, since) if e.symbol == s]) >= count
                            for s in PAIRS), what=f"{count} deltas of every pair")


@pytest.mark.parametrize("depth", [10, 1000])
def test_snapshot_then_verified_deltas_rebuild_the_true_book(spawn_child, start_handler, bus,
                                                              depth):
    port = start_simulator(spawn_child)
    start_handler("kraken", port, depth=depth)
    streaming(bus)
    bus.until(lambda _: bus.of(Trade) and bus.of(Quote), what="trades and spreads")
    books_equal_the_simulators(bus, port, depth)
    snapshots = bus.of(BookSnapshot)
    assert {(s.symbol, s.native_symbol, s.checksum, s.generation) for s in snapshots} == {
        ("BTC-USD", "XBT/USD", "kraken-crc32", 1), ("ETH-USD", "ETH/USD", "kraken-crc32", 1),
        ("SOL-USD", "SOL/USD", "kraken-crc32", 1)}
    assert bus.metric("kraken", "checksum_mismatches") == 0
    assert "resyncing" not in bus.states()
    quote = next(q for q in bus.of(Quote) if q.symbol == "BTC-USD")
    fair = fair_price("BTC-USD", quote.ts_event)
    assert quote.bid_price < quote.ask_price and abs(quote.bid_price / fair - 1) < 0.001


def test_a_corrupt_checksum_is_noticed_counted_and_the_pair_resynced(
        spawn_child, start_handler, bus):
    port = start_simulator(spawn_child)
    start_handler("kraken", port, depth=100)
    streaming(bus)
    mark = bus.mark()
    control(port, "corrupt", pair="ETH-USD")
    bus.until(lambda _: any(s.symbol == "ETH-USD" and s.generation == 2
                            for s in bus.of(BookSnapshot, mark)), what="ETH-USD's new snapshot")
    said = [(s.state, s.symbol, s.message) for s in bus.of(Status, mark)]
    assert said == [("resyncing", "ETH-USD", "checksum mismatch")]
    bus.until(lambda _: bus.metric("kraken", "checksum_mismatches") == 1
              and bus.metric("kraken", "resubscribes") == 1, what="the mismatch counted")
    streaming(bus, mark, count=20)  # the others never stopped
    assert [s.symbol for s in bus.of(BookSnapshot, mark)] == ["ETH-USD"]
    books_equal_the_simulators(bus, port, 100)


def test_a_pair_kraken_does_not_know_is_refused_alone(spawn_child, start_handler, bus):
    port = start_simulator(spawn_child)
    start_handler("kraken", port, symbols=PAIRS + ["FOO-USD"], depth=10)
    streaming(bus)
    said = bus.until(lambda _: [s for s in bus.of(Status) if s.symbol == "FOO-USD"],
                     what="a Status for FOO-USD")
    assert [(s.state, s.code, s.message) for s in said] == [
        ("error", 1, "Currency pair not supported FOO/USD")]
    bus.until(lambda _: bus.metric("kraken", "symbols_refused", provider="kraken") >= 1,
              what="the refusal counted")
    assert "disconnected" not in bus.states()


MID_TOLERANCE = 0.002  # tests/test_market.py's, for quotes received within a second


def test_btc_usd_at_kraken_and_coinbase_is_the_same_market(spawn_child):
    kraken = start_simulator(spawn_child)
    coinbase = simulators.start(spawn_child, "tickmesh.handlers.coinbase.sim.server",
                                "coinbase-sim", None, {"symbols": ["BTC-USD"]})[0]
    with connect(f"ws://127.0.0.1:{kraken}") as k, connect(f"ws://127.0.0.1:{coinbase}") as c:
        k.send(json.dumps({"event": "subscribe", "pair": ["XBT/USD"],
                           "subscription": {"name": "spread"}}))
        c.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                           "channels": ["level2_batch"]}))
        spread = wait_until(lambda: (m := json.loads(k.recv(timeout=5))) and isinstance(m, list)
                            and m, what="a Kraken spread")
        at = time.monotonic()
        book = wait_until(lambda: (m := json.loads(c.recv(timeout=5)))["type"] == "snapshot"
                          and m, what="a Coinbase snapshot")
        assert time.monotonic() - at < 1.0
    kraken_mid = (float(spread[1][0]) + float(spread[1][1])) / 2
    coinbase_mid = (float(book["bids"][0][0]) + float(book["asks"][0][0])) / 2
    assert abs(kraken_mid / coinbase_mid - 1) < MID_TOLERANCE, (kraken_mid, coinbase_mid)


def test_the_simulator_answers_pings_and_refuses_nonsense(spawn_child):
    port = start_simulator(spawn_child)
    with connect(f"ws://127.0.0.1:{port}") as ws:
        assert json.loads(ws.recv())["event"] == "systemStatus"
        ws.send(json.dumps({"event": "ping", "reqid": 9}))
        assert json.loads(ws.recv()) == {"event": "pong", "reqid": 9}
        ws.send("garbage")
        assert json.loads(ws.recv()) == {"event": "error", "errorMessage": "Malformed request"}
        ws.send(json.dumps({"event": "subscribe", "pair": ["XBT/USD"],
                            "subscription": {"name": "book", "depth": 7}}))
        assert json.loads(ws.recv())["errorMessage"] == "Subscription depth not supported"
    wait_until(lambda: control(port, "stats")["counters"].get('bad_input{reason="bad_request"}'),
               what="the bad request counted")
