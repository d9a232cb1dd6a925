"""The Coinbase protocol, pure: every message kind normalized, the aggressor's side, losses
found from trade ids and turned into single-product resyncs, bad input counted and resynced
while other frames flow, and the subscribe sent at once (the server wants it within 5 s)."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from tickmesh.bus.events import BookDelta, BookSnapshot, Trade
from tickmesh.handlers.coinbase import wire
from tickmesh.handlers.coinbase.protocol import CoinbaseProtocol, Credentials
from tickmesh.handlers.common.protocol import Change, Resubscribe

pytestmark = pytest.mark.timeout(30)
TS = 1_700_000_000_000_000_000
TIME = "2022-08-04T15:25:05.010758Z"
TIME_NS = 1659626705_010758000


def frame(**message) -> bytes:
    return json.dumps(message).encode()


def snapshot(product="BTC-USD", bids=(("100.00", "1.5"), ("99.50", "2")),
             asks=(("100.50", "1"), ("101.00", "3"))) -> bytes:
    return frame(type="snapshot", product_id=product, bids=bids, asks=asks)


def l2update(product="BTC-USD", changes=(("buy", "100.10", "0.5"),)) -> bytes:
    return frame(type="l2update", product_id=product, changes=changes, time=TIME)


def match(trade_id, product="BTC-USD", side="sell", kind="match", sequence=None,
          price="100.50", size="0.25") -> bytes:
    return frame(type=kind, trade_id=trade_id, sequence=sequence or trade_id * 10,
                 maker_order_id="m", taker_order_id="t", time=TIME, product_id=product,
                 size=size, price=price, side=side)


def heartbeat(last_trade_id, product="BTC-USD", sequence=10_000) -> bytes:
    return frame(type="heartbeat", sequence=sequence, last_trade_id=last_trade_id,
                 product_id=product, time=TIME)


@pytest.fixture
def proto() -> CoinbaseProtocol:
    """Connected and subscribed, both products' snapshots and last matches in."""
    p = CoinbaseProtocol(["BTC-USD", "ETH-USD"], counters=Counter())
    p.start()
    p.receive(frame(type="subscriptions", channels=[]), TS)
    for product in ("BTC-USD", "ETH-USD"):
        p.receive(snapshot(product), TS)
        p.receive(match(100, product, kind="last_match"), TS)
    return p


def resynced(out, symbol: str) -> bool:
    return (Resubscribe(symbol, out.effects[0].reason) in out.effects
            and any(c.state == "resyncing" and c.symbol == symbol for c in out.changes))


# --- the session -----------------------------------------------------------------------------

def test_start_subscribes_at_once_to_every_product():
    p = CoinbaseProtocol(["BTC-USD", "ETH-USD"])
    out = p.start()
    assert out.changes == [Change("connected")]
    assert [json.loads(r) for r in out.replies] == [{
        "type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"],
        "channels": ["level2_batch", "matches", "heartbeat"]}]


def test_level2_subscribe_is_signed():
    p = CoinbaseProtocol(["BTC-USD"], "level2", Credentials("k", "c2VjcmV0", "pp"),
                         clock=lambda: 1_700_000_000.5)
    sent = json.loads(p.start().replies[0])
    assert sent["channels"][0] == "level2"
    assert (sent["key"], sent["passphrase"], sent["timestamp"]) == ("k", "pp", "1700000000")
    assert sent["signature"] == wire.signature("c2VjcmV0", "1700000000")


def test_the_first_subscriptions_reply_is_subscribed():
    p = CoinbaseProtocol(["BTC-USD"])
    p.start()
    reply = frame(type="subscriptions", channels=[{"name": "matches",
                                                   "product_ids": ["BTC-USD"]}])
    assert [c.state for c in p.receive(reply, TS).changes] == ["subscribed"]
    assert p.receive(reply, TS).changes == []  # after a resubscribe: nothing new


def test_errors_become_changes_and_the_fatal_ones_close():
    p = CoinbaseProtocol(["BTC-USD"])
    p.start()
    out = p.receive(frame(type="error", message="Failed to subscribe",
                          reason="BTC-USD is not a valid product"), TS)
    assert out.changes == [Change("error", 1, "Failed to subscribe: BTC-USD is not a valid "
                                              "product", "BTC-USD")]
    assert not out.close
    out = p.receive(frame(type="error", message="ErrSlowConsume"), TS)
    assert out.changes[0].code == 3 and out.close


def test_unknown_message_types_are_ignored(proto):
    out = proto.receive(frame(type="ticker", product_id="BTC-USD"), TS)
    assert out.events == [] and out.problem == "" and not proto.counters


# --- normalizing -----------------------------------------------------------------------------

def test_snapshot_and_update_normalize(proto):
    out = proto.receive(snapshot(), TS)
    assert out.events == [BookSnapshot(
        provider="coinbase", symbol="BTC-USD", ts_event=TS, ts_recv=TS,
        bids=[(100.0, 1.5), (99.5, 2.0)], asks=[(100.5, 1.0), (101.0, 3.0)], generation=2)]
    out = proto.receive(l2update(changes=[["buy", "100.10", "0.5"], ["sell", "101.00", "0"],
                                          ["sell", "100.50", "2.25"]]), TS)
    assert out.events == [BookDelta(
        provider="coinbase", symbol="BTC-USD", ts_event=TIME_NS, ts_recv=TS,
        bids=[(100.1, 0.5)], asks=[(101.0, 0.0), (100.5, 2.25)], generation=2)]
    assert proto.products["BTC-USD"].book.asks == {100.5: 2.25}


@pytest.mark.parametrize("maker, aggressor", [("sell", "b"), ("buy", "s")])
def test_match_is_a_trade_with_the_aggressors_side(proto, maker, aggressor):
    out = proto.receive(match(101, side=maker), TS)
    assert out.events == [Trade(provider="coinbase", symbol="BTC-USD", ts_event=TIME_NS,
                                ts_recv=TS, price=100.5, size=0.25, trade_id="101",
                                side=aggressor)]


def test_last_match_is_not_published_but_sets_the_trade_ids():
    p = CoinbaseProtocol(["BTC-USD"])
    p.start()
    assert p.receive(match(7, kind="last_match"), TS).events == []
    assert p.receive(match(8), TS).effects == []
    assert p.products["BTC-USD"].last_trade_id == 8


def test_times_parse_to_the_nanosecond():
    assert wire.parse_time(TIME) == TIME_NS
    assert wire.parse_time("2022-08-04T15:25:05Z") == 1659626705 * 10**9
    assert wire.parse_time("2022-08-04T17:25:05.5+02:00") == 1659626705_500000000
    assert wire.format_time(TIME_NS) == TIME


# --- losses ----------------------------------------------------------------------------------

def test_a_skipped_trade_id_resyncs_that_product(proto):
    out = proto.receive(match(103), TS)
    assert [e.trade_id for e in out.events] == ["103"]  # the trade that came is still one
    assert resynced(out, "BTC-USD")
    assert proto.counters["trades_missed"] == 2
    assert proto.counters["resyncs", "trade_gap"] == 1


def test_a_heartbeat_ahead_of_the_matches_resyncs(proto):
    assert proto.receive(heartbeat(100), TS).effects == []
    out = proto.receive(heartbeat(101), TS)
    assert resynced(out, "BTC-USD") and proto.counters["trades_missed"] == 1


def test_sequence_skips_are_not_losses_but_going_back_is_counted(proto):
    assert proto.receive(match(101, sequence=5000), TS).effects == []
    assert proto.receive(heartbeat(101, sequence=9000), TS).effects == []
    out = proto.receive(heartbeat(101, sequence=10), TS)
    assert out.effects == [] and proto.counters["bad_input", "stale_sequence"] == 1


def test_a_heartbeat_without_a_trade_id_proves_nothing(proto):
    assert proto.receive(heartbeat(0), TS).effects == []


def test_a_duplicate_match_is_dropped_and_counted(proto):
    proto.receive(match(101), TS)
    out = proto.receive(match(101), TS)
    assert out.events == [] and proto.counters["bad_input", "stale_trade"] == 1


def test_resubscribe_sends_unsubscribe_then_subscribe_and_waits_for_the_snapshot(proto):
    proto.receive(match(105), TS)  # a gap: resyncing
    out = proto.resubscribe("BTC-USD")
    assert [(m["type"], m["product_ids"]) for m in map(json.loads, out.replies)] == [
        ("unsubscribe", ["BTC-USD"]), ("subscribe", ["BTC-USD"])]
    assert out.changes == []  # "resyncing" was already said
    assert proto.receive(l2update(), TS).events == []  # old data: ignored
    assert proto.receive(l2update("ETH-USD"), TS).events  # the other product flows
    new = proto.receive(snapshot(), TS).events
    assert new[0].generation == 2
    assert proto.receive(l2update(), TS).events[0].generation == 2


def test_control_resync_goes_through_the_backoff_then_says_resyncing(proto):
    from tickmesh.bus.events import Control

    out = proto.control(Control(provider="coinbase", symbol="ETH-USD", ts_event=TS,
                                ts_recv=TS, action="resync", sender="test"), TS)
    assert out.effects == [Resubscribe("ETH-USD", "asked by test")]
    assert proto.resubscribe("ETH-USD").changes[0] == Change("resyncing", symbol="ETH-USD",
                                                             message="asked")
    assert proto.resubscribe("DOGE-USD").problem  # not ours


# --- bad input -------------------------------------------------------------------------------

BAD = {
    "crossed snapshot": (snapshot(bids=[["101.00", "1"]], asks=[["100.00", "1"]]),
                         "crossed_book"),
    "negative size": (l2update(changes=[["buy", "100.10", "-1"]]), "bad_size"),
    "NaN size": (l2update(changes=[["sell", "100.60", "NaN"]]), "bad_size"),
    "price that does not parse": (snapshot(bids=[["1OO.00", "1"]]), "bad_price"),
    "crossing update": (l2update(changes=[["buy", "100.50", "1"]]), "crossed_book"),
    "update without changes": (frame(type="l2update", product_id="BTC-USD", time=TIME),
                               "malformed_l2update"),
    "bad side": (l2update(changes=[["bid", "100.10", "1"]]), "malformed_l2update"),
    "nested too deep": (b'{"type":"l2update","product_id":"BTC-USD","changes":'
                        + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_frame"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_counted_and_resyncs_the_product_while_others_flow(proto, name):
    bad, reason = BAD[name]
    out = proto.receive(bad, TS)
    assert resynced(out, "BTC-USD"), out
    assert out.events == []
    counted = proto.counters["bad_input", reason] + proto.counters["resyncs", reason]
    assert counted >= 1, proto.counters
    assert proto.receive(l2update("ETH-USD"), TS).events  # the other product flows
    assert proto.receive(match(101, "ETH-USD"), TS).events
    assert proto.receive(l2update(), TS).events == []  # until its new snapshot
    assert proto.receive(snapshot(), TS).events[0].generation == 2


@pytest.mark.parametrize("garbage", [b"", b"not json", b"[1,2]", b'{"type": 5}', b"\xff\xfe",
                                     b"[" * 50_000])
def test_garbage_is_counted_and_nothing_else(proto, garbage):
    out = proto.receive(garbage, TS)
    assert out.events == [] and out.effects == [] and out.problem
    assert proto.counters["bad_input", "malformed_frame"] == 1


def test_a_match_with_a_bad_price_is_counted_and_resyncs(proto):
    out = proto.receive(match(101, price="inf"), TS)
    assert out.events == [] and resynced(out, "BTC-USD")
    assert proto.counters["bad_input", "bad_price"] == 1


def test_a_message_for_a_product_not_ours_is_counted(proto):
    out = proto.receive(snapshot("DOGE-USD"), TS)
    assert out.events == [] and out.effects == []
    assert proto.counters["bad_input", "unknown_product"] == 1


def test_a_reconnect_starts_every_book_over(proto):
    proto.start()
    assert proto.receive(l2update(), TS).events == []
    assert proto.receive(snapshot(), TS).events[0].generation == 2
    assert math.isclose(proto.products["BTC-USD"].book.bids[100.0], 1.5)


def test_an_absurd_trade_id_jump_is_bad_input_not_lost_trades(proto):
    out = proto.receive(heartbeat(10**12), TS)
    assert resynced(out, "BTC-USD")
    assert proto.counters["bad_input", "bad_trade_id"] == 1 and not proto.counters["trades_missed"]
