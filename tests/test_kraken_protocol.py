"""The Kraken v1 protocol, pure: subscribes, per-pair statuses (a refused pair alone), data
keyed by channel name and pair, books checked against every update's checksum (a mismatch:
that pair resyncing, counted, resubscribed; its delta never published), levels kept as
received, truncation to the depth with republished levels, trades and spreads, bad input
counted without a crash; a level's price and volume read fast as they are read carefully."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from tickmesh.bus.events import BookDelta, BookSnapshot, Quote, Trade
from tickmesh.handlers.common.protocol import Change, Resubscribe, Timer
from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.checksum import checksum
from tickmesh.handlers.kraken.protocol import CHECKSUM, KrakenProtocol

pytestmark = pytest.mark.timeout(30)
TS = 1_700_000_000_000_000_000
T = "1582905487.439814"
T_NS = 1582905487_439814000


def frame(message) -> bytes:
    return json.dumps(message).encode()


def status(pair="XBT/USD", state="subscribed", name="book", depth=10, error=""):
    return frame(wire.subscription_status(pair, state, name, depth, 42, error))


ASKS = [["100.5", "1.00000000", T], ["101.0", "2.50000000", T], ["102.0", "0.10000000", T]]
BIDS = [["100.0", "1.50000000", T], ["99.5", "2.00000000", T], ["98.0", "4.00000000", T]]


def snapshot(pair="XBT/USD", asks=ASKS, bids=BIDS, depth=10) -> bytes:
    return frame([42, {"as": asks, "bs": bids}, f"book-{depth}", pair])


class Truth:
    """The book the update stream implies, to sign updates with (strings as sent)."""

    def __init__(self, asks=ASKS, bids=BIDS, depth=10) -> None:
        self.depth = depth
        self.asks = {float(p): (p, v) for p, v, *_ in asks}
        self.bids = {float(p): (p, v) for p, v, *_ in bids}

    def apply(self, side: str, levels) -> None:
        book = self.asks if side == "a" else self.bids
        for p, v, *_ in levels:
            if float(v):
                book[float(p)] = (p, v)
            else:
                book.pop(float(p), None)
        keep = sorted(book, reverse=side == "b")[:self.depth]
        for price in set(book) - set(keep):
            del book[price]

    def checksum(self) -> str:
        asks = [self.asks[p] for p in sorted(self.asks)]
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)]
        return str(checksum(asks, bids))


def update(truth: Truth, pair="XBT/USD", a=None, b=None, c=None, depth=10) -> bytes:
    """An update of `a` and/or `b` levels, signed with the truth's checksum after it."""
    payloads = []
    for side, levels in (("a", a), ("b", b)):
        if levels is not None:
            truth.apply(side, levels)
            payloads.append({side: levels})
    payloads[-1]["c"] = c if c is not None else truth.checksum()
    return frame([42, *payloads, f"book-{depth}", pair])


@pytest.fixture
def proto() -> KrakenProtocol:
    """Connected, subscribed, XBT/USD's and ETH/USD's snapshots in (depth 10)."""
    p = KrakenProtocol(["BTC-USD", "ETH-USD"], depth=10, counters=Counter())
    p.start()
    p.receive(frame(wire.system_status(1)), TS)
    for pair in ("XBT/USD", "ETH/USD"):
        p.receive(status(pair), TS)
        p.receive(snapshot(pair), TS)
    return p


def test_pairs_are_kraken_names_for_bus_symbols():
    assert wire.native_pair("BTC-USD") == "XBT/USD"
    assert wire.native_pair("DOGE-USD") == "XDG/USD"
    assert wire.native_pair("ETH-BTC") == "ETH/XBT"
    assert wire.our_symbol("XBT/USD") == "BTC-USD" and wire.our_symbol("XDG/EUR") == "DOGE-EUR"
    assert wire.our_symbol("nonsense") == ""


def test_start_subscribes_every_channel_for_every_pair():
    p = KrakenProtocol(["BTC-USD", "DOGE-USD"], depth=1000, counters=Counter())
    out = p.start()
    sent = [json.loads(r) for r in out.replies]
    assert sent == [{"event": "subscribe", "pair": ["XBT/USD", "XDG/USD"],
                     "subscription": {"name": "book", "depth": 1000}},
                    {"event": "subscribe", "pair": ["XBT/USD", "XDG/USD"],
                     "subscription": {"name": "trade"}},
                    {"event": "subscribe", "pair": ["XBT/USD", "XDG/USD"],
                     "subscription": {"name": "spread"}}]
    assert out.changes == [Change("connected")]
    assert any(isinstance(e, Timer) for e in out.effects)  # the ping


def test_the_first_subscription_status_is_subscribed():
    p = KrakenProtocol(["BTC-USD"], counters=Counter())
    p.start()
    out = p.receive(status(), TS)
    assert [c.state for c in out.changes] == ["subscribed"]
    assert p.receive(status(name="trade"), TS).changes == []


def test_a_snapshot_is_published_with_floats_the_native_pair_and_the_checksum_named(proto):
    out = proto.receive(snapshot(asks=ASKS, bids=BIDS), TS)
    [book] = out.events
    assert isinstance(book, BookSnapshot)
    assert (book.symbol, book.native_symbol, book.checksum) == ("BTC-USD", "XBT/USD", CHECKSUM)
    assert book.asks == [(100.5, 1.0), (101.0, 2.5), (102.0, 0.1)]
    assert book.bids == [(100.0, 1.5), (99.5, 2.0), (98.0, 4.0)]
    assert book.generation == 2 and book.ts_event == T_NS


def test_an_update_whose_checksum_matches_is_a_delta(proto):
    truth = Truth()
    out = proto.receive(update(truth, a=[["100.5", "0.00000000", T]],
                               b=[["100.2", "0.30000000", T]]), TS)
    [delta] = out.events
    assert isinstance(delta, BookDelta) and delta.generation == 1
    assert delta.asks == [(100.5, 0.0)] and delta.bids == [(100.2, 0.3)]
    assert proto.counters["checksum_mismatches"] == 0


def test_a_checksum_mismatch_resyncs_that_pair_only_and_publishes_nothing(proto):
    truth = Truth()
    out = proto.receive(update(truth, b=[["100.2", "0.30000000", T]], c="12345"), TS)
    assert out.events == []
    assert out.changes == [Change("resyncing", symbol="BTC-USD", message="checksum mismatch")]
    assert out.effects == [Resubscribe("BTC-USD", "checksum mismatch")]
    assert proto.counters["checksum_mismatches"] == 1
    assert proto.counters["resyncs", "checksum"] == 1
    # its updates are ignored until a new snapshot; ETH/USD streams on
    assert proto.receive(update(Truth(), b=[["99.0", "1.0", T]]), TS).events == []
    eth = proto.receive(update(Truth(), pair="ETH/USD", b=[["99.0", "1.0", T]]), TS)
    assert [e.symbol for e in eth.events] == ["ETH-USD"]
    again = proto.resubscribe("BTC-USD")
    assert [json.loads(r) for r in again.replies] == [
        {"event": "unsubscribe", "pair": ["XBT/USD"], "subscription": {"name": "book",
                                                                       "depth": 10}},
        {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book",
                                                                     "depth": 10}}]
    assert again.changes == []  # resyncing already said
    [fresh] = proto.receive(snapshot(), TS).events
    assert fresh.generation == 2


def test_a_lost_update_shows_at_the_next_checksum(proto):
    truth = Truth()
    update(truth, a=[["100.7", "3.00000000", T]])  # lost on the way
    out = proto.receive(update(truth, b=[["99.9", "1.00000000", T]]), TS)
    assert out.events == [] and proto.counters["checksum_mismatches"] == 1


def test_levels_keep_their_strings_for_the_checksum(proto):
    """A volume sent as '1.0' must be summed as '10', not as a float's '1.0' -> '10' by
    luck: here '2.50000000' and '2.5' are the same float but not the same checksum."""
    truth = Truth()
    out = proto.receive(update(truth, a=[["101.0", "2.5", T]]), TS)
    assert len(out.events) == 1 and proto.counters["checksum_mismatches"] == 0


def test_truncation_to_the_depth_and_a_republished_level():
    p = KrakenProtocol(["BTC-USD"], depth=10, counters=Counter())
    p.start()
    asks = [[f"{100 + i}.0", "1.00000000", T] for i in range(10)]
    bids = [[f"{99 - i}.0", "1.00000000", T] for i in range(10)]
    p.receive(snapshot(asks=asks, bids=bids), TS)
    truth = Truth(asks, bids)
    # a better bid pushes the worst one out: no message says so
    out = p.receive(update(truth, b=[["99.5", "1.00000000", T]]), TS)
    [delta] = out.events
    assert sorted(delta.bids) == [(90.0, 0.0), (99.5, 1.0)]
    # a bid removed, and the level below it comes back as a republish
    out = p.receive(update(truth, b=[["99.5", "0.00000000", T], ["90.0", "1.00000000", T, "r"]]),
                    TS)
    assert sorted(out.events[0].bids) == [(90.0, 1.0), (99.5, 0.0)]
    assert p.counters["checksum_mismatches"] == 0


def test_trades_and_spreads(proto):
    out = proto.receive(frame([7, [["5541.2", "0.15850568", T, "s", "l", ""],
                                   ["5542.0", "0.1", T, "b", "m", ""]], "trade", "XBT/USD"]), TS)
    assert [(t.price, t.size, t.side, t.symbol, t.native_symbol) for t in out.events] == [
        (5541.2, 0.15850568, "s", "BTC-USD", "XBT/USD"), (5542.0, 0.1, "b", "BTC-USD", "XBT/USD")]
    assert all(isinstance(t, Trade) and t.ts_event == T_NS for t in out.events)
    out = proto.receive(frame([8, ["5698.4", "5700.0", T, "1.01234567", "0.98765432"], "spread",
                               "XBT/USD"]), TS)
    [quote] = out.events
    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.ask_price, quote.bid_size, quote.ask_size) == (
        5698.4, 5700.0, 1.01234567, 0.98765432)


def test_a_refused_pair_is_an_error_for_that_symbol_alone():
    p = KrakenProtocol(["BTC-USD", "FOO-USD"], counters=Counter())
    p.start()
    p.receive(status("XBT/USD"), TS)
    out = p.receive(status("FOO/USD", "error", error="Currency pair not supported FOO/USD"), TS)
    assert out.changes == [Change("error", 1, "Currency pair not supported FOO/USD",
                                  "FOO-USD")]
    assert p.counters["symbols_refused", "kraken"] == 1
    assert out.close is False


@pytest.mark.parametrize("garbage", [
    b"not json", b"[]", b"{}", b'[1, {"as": 3}, "book-10", "XBT/USD"]',
    b'[1, {"a": [["x", "1", "1"]], "c": "1"}, "book-10", "XBT/USD"]',
    b'[1, {"a": [["100.0", "1", "1"]]}, "book-10", "XBT/USD"]',
    b'[1, {"a": [["100.0"]], "c": "1"}, "book-10", "XBT/USD"]',
    b'[1, [["1", "1", "1", "q"]], "trade", "XBT/USD"]',
    b'[1, ["a", "b"], "spread", "XBT/USD"]',
    b'[1, {}, "book-10", "NOPE/USD"]', b'[1, {}, "candles", "XBT/USD"]',
    b'{"event": "subscriptionStatus"}', b'[' * 100_000,
])
def test_garbage_is_counted_never_raised(proto, garbage):
    out = proto.receive(garbage, TS)
    assert out.problem and out.events == []
    assert sum(n for k, n in proto.counters.items() if k[0] == "bad_input") >= 1


def test_a_bad_book_message_resyncs_its_pair(proto):
    out = proto.receive(b'[1, {"a": [["x", "1", "1"]], "c": "1"}, "book-10", "XBT/USD"]', TS)
    assert out.effects == [Resubscribe("BTC-USD", "bad_price")]


@pytest.mark.parametrize("level", [["١٠١", "1", T], ["100.5", "٣", T], ["１００", "1", T]])
def test_digits_of_another_script_are_a_bad_level_not_a_crash(proto, level):
    """float() reads Arabic-Indic and full-width digits; the checksum (ASCII) could not."""
    proto.receive(snapshot(), TS)
    update = [1, {"a": [level], "c": "1"}, "book-10", "XBT/USD"]
    out = proto.receive(json.dumps(update, ensure_ascii=False).encode(), TS)
    assert out.events == [] and out.effects and out.effects[0].symbol == "BTC-USD"
    assert sum(n for k, n in proto.counters.items() if k[0] == "bad_input") >= 1
    out = proto.receive(snapshot(asks=[level]), TS)  # in a snapshot too
    assert out.events == [] and out.effects and out.effects[0].symbol == "BTC-USD"


def test_a_bad_snapshot_is_asked_for_again(proto):
    out = proto.receive(snapshot(asks=[["100.5", "nan", T]]), TS)
    assert out.events == [] and out.effects == [Resubscribe("BTC-USD", "bad_size")]
    assert out.changes == [Change("resyncing", symbol="BTC-USD", message="bad_size")]
    assert [e.generation for e in proto.receive(snapshot(), TS).events] == [2]


def test_ping_timer_sends_a_ping_and_pong_is_quiet(proto):
    out = proto.timer("ping", TS)
    assert json.loads(out.replies[0])["event"] == "ping"
    assert any(isinstance(e, Timer) for e in out.effects)
    assert proto.receive(frame({"event": "pong", "reqid": 1}), TS) == proto.receive(
        frame({"event": "heartbeat"}), TS)


def test_a_system_status_not_online_is_an_error():
    p = KrakenProtocol(["BTC-USD"], counters=Counter())
    p.start()
    out = p.receive(frame(wire.system_status(1, "maintenance")), TS)
    assert [(c.state, c.message) for c in out.changes] == [("error", "system status maintenance")]


VALUES = st.one_of(
    st.sampled_from(["100.5", "0.00000500", "0", "0.0", "-0.0", "-1", "nan", "inf", "-inf",
                     "1e400", " 7 ", "1_0", "", "x", "١٢", "0x10"]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(), st.integers(), st.booleans(), st.none(), st.just([1]))


@settings(max_examples=500)
@given(VALUES, VALUES)
def test_a_level_is_read_as_price_and_volume_read_it(price, volume):
    """wire.level's fast path: the same values, or the same Malformed, as price(), volume()."""
    def read(call):
        try:
            return call()
        except wire.Malformed as exc:
            return exc.kind, str(exc)
    expected = read(lambda: (wire.price(price), wire.volume(volume)))
    assert repr(read(lambda: wire.level(price, volume))) == repr(expected)  # -0.0, nan too
