"""The Binance protocol, pure: subscriptions, the local order book rules one by one, bad input,
and the pacing of snapshot requests. No sockets: frames, timers and REST answers go in by
hand, as the client would hand them over."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest

from tickmesh.bus.events import BookDelta, BookSnapshot, Control, Quote, Trade
from tickmesh.handlers.binance import wire
from tickmesh.handlers.binance.pacing import NS, SnapshotPacer
from tickmesh.handlers.binance.protocol import PUMP_TIMER, SUBSCRIBE_TIMER, BinanceProtocol, Config
from tickmesh.handlers.common.protocol import HttpRequest, HttpResponse, Output, Resubscribe, Timer

T0 = 1_700_000_000 * NS


def frame(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def depth(native: str, first: int, last: int, bids=(), asks=()) -> bytes:
    data = {"e": "depthUpdate", "E": 1_700_000_000_000, "s": native, "U": first, "u": last,
            "b": [list(level) for level in bids], "a": [list(level) for level in asks]}
    return frame({"stream": f"{native.lower()}@depth@100ms", "data": data})


def answer(symbol: str, last_id: int, bids=(), asks=(), status: int = 200) -> HttpResponse:
    body = {"lastUpdateId": last_id, "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks]}
    return HttpResponse(f"depth:{symbol}", status, json.dumps(body).encode())


def requests(out: Output) -> list[HttpRequest]:
    return [e for e in out.effects if isinstance(e, HttpRequest)]


def events(out: Output, kind: type) -> list:
    return [e for e in out.events if isinstance(e, kind)]


def protocol(symbols=("BTC-USDT", "ETH-USDT"), **config) -> BinanceProtocol:
    return BinanceProtocol(Config(symbols=tuple(symbols), rest_url="http://rest", **config),
                           Counter())


def subscribed(p: BinanceProtocol) -> Output:
    """Start a connection and acknowledge its one SUBSCRIBE: the snapshot requests go out."""
    start = p.start()
    request = json.loads(start.replies[0])
    return p.receive(frame({"result": None, "id": request["id"]}), T0)


BOOK = {"bids": [("100.00", "1.0"), ("99.00", "2.0")], "asks": [("101.00", "1.5")]}


def live(p: BinanceProtocol, symbol: str = "BTC-USDT", last_id: int = 100) -> None:
    """Bring a symbol's book in sync at `last_id`."""
    native = symbol.replace("-", "")
    p.receive(depth(native, last_id + 1, last_id + 1, bids=[("98.00", "3")]), T0)
    out = p.http_response(answer(symbol, last_id, **BOOK), T0)
    assert events(out, BookSnapshot)


# --- the connection ----------------------------------------------------------------------

def test_start_subscribes_every_stream_then_asks_for_snapshots():
    p = protocol()
    start = p.start()
    assert [c.state for c in start.changes] == ["connected"]
    request = json.loads(start.replies[0])
    assert request["method"] == "SUBSCRIBE" and request["params"] == [
        "btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker",
        "ethusdt@depth@100ms", "ethusdt@trade", "ethusdt@bookTicker"]
    out = p.receive(frame({"result": None, "id": request["id"]}), T0)
    assert [c.state for c in out.changes] == ["subscribed"]
    assert [(r.key, r.url, r.params) for r in requests(out)] == [
        ("depth:BTC-USDT", "http://rest/api/v3/depth",
         (("symbol", "BTCUSDT"), ("limit", "1000"))),
        ("depth:ETH-USDT", "http://rest/api/v3/depth",
         (("symbol", "ETHUSDT"), ("limit", "1000")))]


def test_subscriptions_go_out_in_chunks_paced_by_a_timer():
    p = protocol(["BTC-USDT", "ETH-USDT", "SOL-USDT"], streams_per_subscribe=4,
                 subscribe_interval=0.25)
    first = p.start()
    assert len(json.loads(first.replies[0])["params"]) == 4
    assert Timer(SUBSCRIBE_TIMER, 0.25) in first.effects
    second = p.timer(SUBSCRIBE_TIMER, T0)
    third = p.timer(SUBSCRIBE_TIMER, T0)
    assert len(json.loads(second.replies[0])["params"]) == 4
    assert len(json.loads(third.replies[0])["params"]) == 1 and not third.effects
    ids = [json.loads(o.replies[0])["id"] for o in (first, second, third)]
    states = [c.state for i in ids
              for c in p.receive(frame({"result": None, "id": i}), T0).changes]
    assert states == ["subscribed"]  # once, when the last chunk is acknowledged


def test_an_answer_to_no_request_is_counted():
    p = protocol()
    p.start()
    out = p.receive(frame({"result": None, "id": 999}), T0)
    assert out.problem and p.counters["bad_input", "unexpected"] == 1


# --- the local order book, rule by rule ---------------------------------------------------

def test_buffered_events_up_to_the_snapshot_are_dropped_and_the_rest_applied():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 90, 95, bids=[("50.00", "9")]), T0)  # u <= 100: dropped
    p.receive(depth("BTCUSDT", 96, 102, bids=[("99.00", "0")]), T0)  # straddles 101: applied
    p.receive(depth("BTCUSDT", 103, 104, asks=[("102.00", "4")]), T0)
    out = p.http_response(answer("BTC-USDT", 100, **BOOK), T0)
    (snapshot,) = events(out, BookSnapshot)
    assert snapshot.symbol == "BTC-USDT" and snapshot.native_symbol == "BTCUSDT"
    assert snapshot.generation == 1
    assert snapshot.bids == [(100.0, 1.0)] and snapshot.asks == [(101.0, 1.5), (102.0, 4.0)]
    out = p.receive(depth("BTCUSDT", 105, 106, bids=[("100.50", "2")]), T0)
    (delta,) = events(out, BookDelta)
    assert delta.bids == [(100.5, 2.0)] and delta.generation == 1


def test_the_first_event_must_straddle_the_snapshot():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 101, 101), T0)  # U <= 100 + 1 <= u
    assert events(p.http_response(answer("BTC-USDT", 100, **BOOK), T0), BookSnapshot)


def test_a_stale_snapshot_is_fetched_again_and_the_buffer_kept():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 120, 125), T0)
    out = p.http_response(answer("BTC-USDT", 100, **BOOK), T0)  # 100 < U - 1: stale
    assert not out.events and not out.changes
    assert [r.key for r in requests(out)] == ["depth:BTC-USDT"]
    assert p.counters["binance_snapshots", "stale"] == 1
    p.receive(depth("BTCUSDT", 126, 130), T0)
    out = p.http_response(answer("BTC-USDT", 127, **BOOK), T0)
    assert events(out, BookSnapshot)


def test_snapshots_that_stay_stale_end_in_a_resync():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 120, 125), T0)
    for _ in range(2):
        assert requests(p.http_response(answer("BTC-USDT", 100, **BOOK), T0))
    out = p.http_response(answer("BTC-USDT", 100, **BOOK), T0)
    assert [(c.state, c.symbol) for c in out.changes] == [("resyncing", "BTC-USDT")]
    assert p.counters["resyncs", "stale_snapshot"] == 1


def test_a_snapshot_before_any_event_waits_for_one():
    p = protocol()
    subscribed(p)
    assert not p.http_response(answer("BTC-USDT", 100, **BOOK), T0).events
    assert events(p.receive(depth("BTCUSDT", 99, 101), T0), BookSnapshot)


def test_old_events_are_ignored_once_live():
    p = protocol()
    subscribed(p)
    live(p)
    assert not p.receive(depth("BTCUSDT", 95, 101), T0).events  # u <= last applied
    assert events(p.receive(depth("BTCUSDT", 102, 102), T0), BookDelta)


def test_a_gap_resyncs_that_symbol_only_and_the_others_stream_on():
    p = protocol()
    subscribed(p)
    live(p, "BTC-USDT", 100)
    live(p, "ETH-USDT", 500)
    out = p.receive(depth("BTCUSDT", 105, 106), T0)  # expected U=102
    assert [(c.state, c.symbol) for c in out.changes] == [("resyncing", "BTC-USDT")]
    assert Resubscribe("BTC-USDT", out.changes[0].message) in out.effects
    assert "gap" in out.changes[0].message and p.counters["resyncs", "gap"] == 1
    assert not p.receive(depth("BTCUSDT", 107, 108), T0).events  # backing off: ignored
    delta = events(p.receive(depth("ETHUSDT", 502, 502, bids=[("1", "1")]), T0), BookDelta)
    assert delta and delta[0].symbol == "ETH-USDT"
    again = p.resubscribe("BTC-USDT")  # the client, after the backoff
    assert again.effects == [Timer(PUMP_TIMER, 0.0)]
    assert [r.key for r in requests(p.timer(PUMP_TIMER, T0))] == ["depth:BTC-USDT"]
    p.receive(depth("BTCUSDT", 109, 110), T0)
    (snapshot,) = events(p.http_response(answer("BTC-USDT", 109, **BOOK), T0), BookSnapshot)
    assert snapshot.generation == 2
    assert events(p.receive(depth("BTCUSDT", 111, 111), T0), BookDelta)[0].generation == 2


def test_a_gap_in_the_buffered_events_resyncs():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 100, 101), T0)
    p.receive(depth("BTCUSDT", 103, 104), T0)
    out = p.http_response(answer("BTC-USDT", 100, **BOOK), T0)
    assert not out.events and out.changes[0].state == "resyncing"


def test_a_control_request_resyncs_through_the_backoff():
    p = protocol()
    subscribed(p)
    live(p)
    request = Control(provider="binance", symbol="BTC-USDT", ts_event=T0, ts_recv=T0,
                      action="resync", sender="test")
    assert p.control(request, T0).effects == [Resubscribe("BTC-USDT", "asked by test")]
    out = p.resubscribe("BTC-USDT")
    assert [(c.state, c.symbol) for c in out.changes] == [("resyncing", "BTC-USDT")]
    assert p.resubscribe("DOGE-USDT").problem
    assert p.counters["bad_input", "unknown_symbol"] == 1


# --- bad input ----------------------------------------------------------------------------

def test_a_crossed_snapshot_is_counted_and_resynced():
    p = protocol()
    subscribed(p)
    p.receive(depth("BTCUSDT", 101, 101), T0)
    out = p.http_response(answer("BTC-USDT", 100, bids=[("101", "1")], asks=[("100", "1")]), T0)
    assert not out.events and out.problem and out.changes[0].state == "resyncing"
    assert p.counters["bad_input", "crossed_book"] == 1


@pytest.mark.parametrize("level", [("100.00", "NaN"), ("100.00", "-1"), ("abc", "1"),
                                   ("100.00", "inf"), ("-5", "1")])
def test_a_bad_level_is_counted_and_resyncs_while_other_frames_flow(level):
    p = protocol()
    subscribed(p)
    live(p, "BTC-USDT", 100)
    live(p, "ETH-USDT", 500)
    out = p.receive(depth("BTCUSDT", 101, 101, bids=[level]), T0)
    assert out.problem and not out.events
    assert [(c.state, c.symbol) for c in out.changes] == [("resyncing", "BTC-USDT")]
    assert p.counters["bad_input", "bad_level"] == 1
    assert events(p.receive(depth("ETHUSDT", 502, 502), T0), BookDelta)
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "100.5", "q": "0.1",
             "T": 1_700_000_000_123, "m": True, "M": True}
    assert events(p.receive(frame({"stream": "btcusdt@trade", "data": trade}), T0), Trade)


def test_a_snapshot_that_fails_or_does_not_decode_resyncs():
    p = protocol()
    subscribed(p)
    out = p.http_response(HttpResponse("depth:BTC-USDT", 400, b'{"code":-1121}'), T0)
    assert out.changes[0].state == "resyncing" and p.counters["binance_snapshots", "failed"] == 1
    p.resubscribe("BTC-USDT")
    assert requests(p.timer(PUMP_TIMER, T0))
    out = p.http_response(HttpResponse("depth:BTC-USDT", 200, b"[[[["), T0)
    assert out.changes[0].state == "resyncing"
    assert p.counters["bad_input", "malformed_snapshot"] == 1


@pytest.mark.parametrize("data", [b"not json", b"[" * 100_000 + b"]" * 100_000, b"[1, 2]",
                                  b'{"stream": "btcusdt@depth@100ms", "data": {"s": 5}}',
                                  b'{"stream": "nope@nothing", "data": {}}', b'{"x": 1}',
                                  b'{"stream": "dogeusdt@trade", "data": {"e": "trade", "s": '
                                  b'"DOGEUSDT", "t": 1, "p": "1", "q": "1", "T": 1, "m": true}}'])
def test_hostile_frames_are_counted_never_raised(data):
    p = protocol()
    subscribed(p)
    out = p.receive(data, T0)
    assert out.problem and not out.events and sum(
        v for k, v in p.counters.items() if k[0] == "bad_input") == 1


# --- trades, quotes, errors, shutdown -----------------------------------------------------

def test_trades_and_book_tickers_are_normalized():
    p = protocol()
    subscribed(p)
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 12345, "p": "90000.10", "q": "0.5",
             "T": 1_700_000_000_123, "m": True, "M": True}
    (t,) = events(p.receive(frame({"stream": "btcusdt@trade", "data": trade}), T0 + 5), Trade)
    assert (t.symbol, t.native_symbol, t.price, t.size, t.trade_id, t.side, t.ts_event) == (
        "BTC-USDT", "BTCUSDT", 90000.1, 0.5, "12345", "s", 1_700_000_000_123_000_000)
    buy = {**trade, "m": False}
    (b,) = events(p.receive(frame({"stream": "btcusdt@trade", "data": buy}), T0), Trade)
    assert b.side == "b"
    ticker = {"u": 400900217, "s": "ETHUSDT", "b": "25.35", "B": "31.21", "a": "25.36",
              "A": "40.66"}
    (q,) = events(p.receive(frame({"stream": "ethusdt@bookTicker", "data": ticker}), T0), Quote)
    assert (q.symbol, q.bid_price, q.bid_size, q.ask_price, q.ask_size) == (
        "ETH-USDT", 25.35, 31.21, 25.36, 40.66)


def test_errors_are_reported_and_server_shutdown_closes():
    p = protocol()
    p.start()
    out = p.receive(frame({"code": 2, "msg": "Invalid request: bad", "id": 1}), T0)
    assert [(c.state, c.code) for c in out.changes] == [("error", 2)]
    assert p.receive(frame({"e": "serverShutdown", "E": 1}), T0).close
    assert p.receive(frame({"event": {"e": "serverShutdown", "E": 1}}), T0).close


# --- pacing -------------------------------------------------------------------------------

def test_snapshot_requests_are_paced_by_weight_and_in_flight():
    symbols = [f"S{i:02d}-USDT" for i in range(30)]
    p = protocol(symbols, channels=("depth",), depth_limit=1000, weight_per_minute=500,
                 snapshots_in_flight=4)  # weight 50: 10 a minute, 4 at once
    sent: list[int] = []  # when each request went out
    out_: list[tuple[str, int]] = []  # (key, when sent) of those not answered yet
    due: int | None = None  # when the pump timer fires
    now = T0

    def run(out: Output) -> None:
        nonlocal due
        out_.extend((r.key, now) for r in requests(out))
        sent.extend(now for _ in requests(out))
        assert len(out_) <= 4
        timers = [t for t in out.effects if isinstance(t, Timer) and t.key == PUMP_TIMER]
        due = now + int(timers[-1].delay * NS) if timers else due

    run(subscribed(p))
    while True:  # each answer 100 ms after its request; the timer when it is due
        answer_at = out_[0][1] + NS // 10 if out_ else None
        now = min(t for t in (answer_at, due, T0 + 90 * NS) if t is not None)
        if now == T0 + 90 * NS:
            break
        if now == answer_at:
            run(p.http_response(answer(out_.pop(0)[0].removeprefix("depth:"), 1, **BOOK), now))
        else:
            due = None
            run(p.timer(PUMP_TIMER, now))
    first_minute = [t for t in sent if t < T0 + 60 * NS]
    assert len(first_minute) == 10  # 500 of weight
    assert first_minute[9] - first_minute[8] >= 6 * NS  # past 80 %: 60 s * 50 / 500 apart
    assert sent[10] >= T0 + 60 * NS  # the first ones out of the window: room again
    assert all(sum(t <= u < t + 60 * NS for u in sent) <= 10 for t in sent)
    assert p.counters["binance_snapshots", "requested"] == len(sent)
    assert p.counters["binance_snapshot_queue"] == 30 - len(sent)


def test_the_pacer_keeps_the_weight_spent_across_reconnects():
    pacer = SnapshotPacer(weight=250, weight_per_minute=1000, max_in_flight=10)
    for symbol in "ABCDE":
        pacer.add(symbol)
    assert pacer.take(T0) == ["A", "B", "C", "D"]
    pacer.reset()
    pacer.add("E")
    assert pacer.take(T0 + NS) == [] and math.isclose(pacer.wait(T0 + NS), 59.0)
    assert pacer.take(T0 + 60 * NS) == ["E"]


def test_depth_weights_follow_the_limit():
    assert [wire.depth_weight(n) for n in (5, 100, 500, 1000, 5000)] == [5, 5, 25, 50, 250]
