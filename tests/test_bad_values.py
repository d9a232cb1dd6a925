"""Issue 9: bad values never reach the bus, one bad number never costs a frame its good
messages, and a payload that does not match its topic never reaches a consumer. Pure: every
normalizer (Alpaca in both encodings, Polygon, IB), fuzzed with hypothesis."""

from __future__ import annotations

import json
import math
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.bus.events import Bar, Quote, Trade, encode
from tickmesh.bus.sequence import MAX_GAP, SequenceTracker
from tickmesh.handlers.alpaca import wire as alpaca_wire
from tickmesh.handlers.alpaca.protocol import AlpacaProtocol
from tickmesh.handlers.common import values
from tickmesh.handlers.ib.protocol import IbProtocol
from tickmesh.handlers.polygon import protocol as polygon
from tests.test_alpaca_protocol import DOC_QUOTE, DOC_TRADE, TS_RECV, frame as alpaca_frame

NAN, INF = math.nan, math.inf


def fit_for_the_bus(event) -> bool:
    """What every published event must satisfy (handlers.common.values)."""
    if isinstance(event, Trade):
        ok = not values.trade_problem(event.price, event.size)
    elif isinstance(event, Quote):
        ok = not values.quote_problem(event.bid_price, event.bid_size, event.ask_price,
                                      event.ask_size)
    elif isinstance(event, Bar):
        ok = not values.bar_problem(event.open, event.high, event.low, event.close,
                                    event.volume, event.vwap)
    else:
        return True
    encode(event)
    return ok and bool(event.symbol) and event.ts_event > 0


# --- the rules and the tolerant JSON reader ---------------------------------------------------

def test_rules():
    assert values.trade_problem(1.5, 0) == ""
    assert [values.trade_problem(*pv) for pv in [(NAN, 1), (INF, 1), (1, -INF), (0, 1), (-1, 1),
                                                 (1, -500), ("1", 1), (True, 1)]] == [
        "non_finite", "non_finite", "non_finite", "bad_price", "bad_price", "bad_size",
        "malformed", "malformed"]
    assert values.quote_problem(0, 0, 10, 1) == ""  # an empty bid side
    assert values.quote_problem(0, 5, 10, 1) == "bad_price"
    assert values.quote_problem(10, 1, NAN, 1) == "non_finite"
    assert values.quote_problem(10, 1, 9, 1) == ""  # crossed: real data
    assert values.crossed(10, 9) and values.crossed(10, 10) and not values.crossed(10, 0)
    assert values.bar_problem(1, 2, 0.5, 1.5, 10) == ""
    assert values.bar_problem(1, 0.5, 2, 1, 10) == "bad_bar"  # high below low
    assert values.bar_problem(3, 2, 1, 1.5, 10) == "bad_bar"  # open above high
    assert values.bar_problem(1, 2, 1, 1, -1) == "bad_size"


def test_split_json_array_follows_strings_and_nesting():
    data = b' [{"p":NaN,"s":"a,]\\"}"} , {"x":[1,{"y":2}]},3] '
    assert values.split_json_array(data) == [b'{"p":NaN,"s":"a,]\\"}"}', b'{"x":[1,{"y":2}]}',
                                             b"3"]
    assert values.split_json_array(b"[]") == []
    assert values.split_json_array(b"[1,{") == [b"1", b"{"]  # truncated: the fragment too
    assert values.split_json_array(b"[1] x") == [b"1", b"x"]
    with pytest.raises(ValueError):
        values.split_json_array(b'{"a":1}')
    assert values.read_json(b'[NaN,Infinity,-Infinity,1e999,-1e999]')[1:] == [INF, -INF, INF,
                                                                             -INF]


@settings(max_examples=300)
@given(st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_split_json_array_never_raises_but_value_error(data):
    try:
        elements = values.split_json_array(data)
    except ValueError:
        return
    assert all(isinstance(e, bytes) for e in elements)


# --- Alpaca ---------------------------------------------------------------------------------

def alpaca(encoding: str, symbols=("AAPL", "AMD")) -> tuple[AlpacaProtocol, Counter]:
    counters: Counter = Counter()
    protocol = AlpacaProtocol(key="k", secret="s", symbols=list(symbols), encoding=encoding,
                              counters=counters)
    protocol.start()
    return protocol, counters


BAD_ALPACA = [  # (message, reason)
    ({**DOC_TRADE, "s": -500}, "bad_size"),
    ({**DOC_TRADE, "p": 0}, "bad_price"),
    ({**DOC_TRADE, "t": "1970-01-01T00:00:00Z"}, "bad_time"),
    ({**DOC_TRADE, "S": ""}, "bad_symbol"),
    ({**DOC_TRADE, "S": "MSFT"}, "unsubscribed"),
    ({**DOC_QUOTE, "bp": 0, "bs": 3}, "bad_price"),
    ({**DOC_QUOTE, "as": -1}, "bad_size"),
]


@pytest.mark.parametrize("encoding", alpaca_wire.ENCODINGS)
def test_alpaca_drops_bad_values_and_keeps_the_rest_of_the_frame(encoding):
    protocol, counters = alpaca(encoding)
    messages = [DOC_TRADE]
    for message, _reason in BAD_ALPACA:
        messages += [message, {**DOC_TRADE, "i": len(messages)}]
    out = protocol.receive(alpaca_frame(messages, encoding), TS_RECV)
    assert [e.trade_id for e in out.events] == ["96921"] + [str(i) for i in range(1, 15, 2)]
    assert counters == Counter({("bad_input", r): n for r, n in Counter(
        reason for _m, reason in BAD_ALPACA).items()})
    assert out.problem


def test_alpaca_msgpack_nan_and_inf_are_dropped_not_published_as_null():
    protocol, counters = alpaca(alpaca_wire.MSGPACK)
    bad = [{**DOC_TRADE, "p": NAN}, {**DOC_TRADE, "p": INF}, {**DOC_TRADE, "s": -INF},
           {**DOC_QUOTE, "ap": NAN}, {**DOC_QUOTE, "bs": INF}]
    out = protocol.receive(alpaca_frame(bad + [DOC_QUOTE], alpaca_wire.MSGPACK), TS_RECV)
    assert [type(e) for e in out.events] == [Quote]
    assert counters == {("bad_input", "non_finite"): 5}


def test_alpaca_json_nan_literal_costs_only_its_message():
    protocol, counters = alpaca(alpaca_wire.JSON)
    good = json.dumps(DOC_TRADE).encode()
    data = b"[" + b",".join([good, good.replace(b'"p": 126.55', b'"p": NaN'),
                             good.replace(b'"s": 1', b'"s": 1e999'),
                             good.replace(b'"p": 126.55', b'"p": -Infinity'),
                             b'{"T":"t","p":nope}', good]) + b"]"
    out = protocol.receive(data, TS_RECV)
    assert [e.price for e in out.events] == [126.55, 126.55]
    assert counters == {("bad_input", "non_finite"): 3, ("bad_input", "malformed"): 1}


@pytest.mark.parametrize("encoding", alpaca_wire.ENCODINGS)
def test_alpaca_crossed_quotes_are_published_and_counted(encoding):
    protocol, counters = alpaca(encoding)
    locked, crossed = {**DOC_QUOTE, "bp": 87.68}, {**DOC_QUOTE, "bp": 87.70}
    out = protocol.receive(alpaca_frame([locked, crossed, DOC_QUOTE], encoding), TS_RECV)
    assert len(out.events) == 3 and counters == {("quotes_crossed", "alpaca"): 2}


def test_alpaca_star_subscribes_to_all_and_channels_count():
    protocol, counters = alpaca(alpaca_wire.JSON, symbols=["*"])
    out = protocol.receive(alpaca_frame([{**DOC_TRADE, "S": "ZZZ"}], alpaca_wire.JSON), 1)
    assert [e.symbol for e in out.events] == ["ZZZ"]
    trades_only = AlpacaProtocol(key="k", secret="s", symbols=["AMD"], channels=["trades"],
                                 encoding=alpaca_wire.JSON)
    out = trades_only.receive(alpaca_frame([DOC_QUOTE], alpaca_wire.JSON), 1)
    assert not out.events and trades_only.counters == {("bad_input", "unsubscribed"): 1}


numbers = st.one_of(st.floats(), st.integers(min_value=-2**64, max_value=2**64),
                    st.sampled_from([NAN, INF, -INF, 0, -0.0, 1e308, -500, 5e-324]))
odd = st.one_of(numbers, st.text(max_size=5), st.none(), st.booleans(),
                st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                      st.integers(), max_size=2))


def deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def near_alpaca(draw):
    message = dict(draw(st.sampled_from([DOC_TRADE, DOC_QUOTE])))
    for key in draw(st.lists(st.sampled_from(sorted({*DOC_TRADE, *DOC_QUOTE})), max_size=4)):
        message[key] = draw(st.one_of(odd, st.integers(1, 3000).map(deep)))
    return message


@settings(max_examples=300)
@given(st.sampled_from(alpaca_wire.ENCODINGS), st.lists(near_alpaca(), min_size=1, max_size=6))
def test_alpaca_fuzz_nothing_raises_nothing_invalid_is_published(encoding, messages):
    protocol, counters = alpaca(encoding)
    try:
        data = alpaca_frame(messages, encoding)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return  # not encodable (a time that is not one, an int past 64 bits)
    out = protocol.receive(data, TS_RECV)
    assert all(fit_for_the_bus(e) and e.symbol in ("AAPL", "AMD") for e in out.events)
    assert len(out.events) + sum(counters[k] for k in counters if k[0] == "bad_input") \
        >= len(messages) or counters["bad_input", "malformed"]


# --- Polygon --------------------------------------------------------------------------------

GOOD_T = {"ev": "T", "sym": "AAPL", "x": 4, "i": "1", "p": 1.5, "s": 10, "t": 1, "q": 1}


def polygon_session(topics=("T.AAPL", "Q.AAPL", "A.AAPL")) -> polygon.PolygonProtocol:
    session = polygon.PolygonProtocol("KEY", list(topics))
    session.start()
    return session


def test_polygon_non_finite_numbers_cost_only_their_message():
    session = polygon_session()
    good = json.dumps(GOOD_T)
    for token in ("1e999", "NaN", "Infinity", "-Infinity", "-1e999"):
        bad = good.replace('"p": 1.5', f'"p": {token}')
        out = session.receive(f"[{good},{bad},{good}]".encode(), TS_RECV)
        assert [e.price for e in out.events] == [1.5, 1.5], token
    assert session.counters == {("bad_input", "non_finite"): 5}


def test_polygon_bad_values_are_dropped_under_their_reason():
    session = polygon_session()
    bar = {"ev": "A", "sym": "AAPL", "v": 200, "o": 2, "c": 2, "h": 1, "l": 3, "s": 5, "e": 6}
    quote = {"ev": "Q", "sym": "AAPL", "bp": 10.0, "bs": 1, "ap": 9.0, "as": 1, "t": 5}
    frame = [bar, {**GOOD_T, "s": -500}, {**GOOD_T, "p": 0}, {**GOOD_T, "t": 0},
             {**GOOD_T, "sym": "MSFT"}, {**bar, "h": 3, "l": 1}, quote, GOOD_T]
    out = session.receive(json.dumps(frame).encode(), TS_RECV)
    assert [type(e).__name__ for e in out.events] == ["Bar", "Quote", "Trade"]
    assert session.counters == {("bad_input", r): 1 for r in (
        "bad_bar", "bad_size", "bad_price", "bad_time", "unsubscribed")} | {
        ("quotes_crossed", "polygon"): 1}
    star = polygon_session(["T.*"])
    assert len(star.receive(json.dumps([{**GOOD_T, "sym": "ZZZ"}]).encode(), 1).events) == 1


@st.composite
def near_polygon(draw):
    bar = {"ev": "AM", "sym": "AAPL", "v": 2, "o": 2, "c": 2, "h": 3, "l": 1, "s": 5, "e": 6,
           "vw": 2}
    quote = {"ev": "Q", "sym": "AAPL", "bp": 1.0, "bs": 1, "ap": 2.0, "as": 1, "t": 5}
    message = dict(draw(st.sampled_from([GOOD_T, bar, quote])))
    for key in draw(st.lists(st.sampled_from(sorted({*GOOD_T, *bar, *quote})), max_size=4)):
        message[key] = draw(st.one_of(odd, st.integers(1, 3000).map(deep)))
    return message


@settings(max_examples=300)
@given(st.lists(near_polygon(), min_size=1, max_size=6))
def test_polygon_fuzz_nothing_raises_nothing_invalid_is_published(messages):
    session = polygon_session(["T.AAPL", "Q.AAPL", "AM.AAPL"])
    try:
        data = json.dumps(messages).encode()  # NaN and Infinity as Python writes them
    except (ValueError, RecursionError):
        return
    out = session.receive(data, TS_RECV)
    assert all(fit_for_the_bus(e) and e.symbol == "AAPL" for e in out.events)


# --- IB -------------------------------------------------------------------------------------

class TickByTickAllLast(SimpleNamespace):
    pass


class TickByTickBidAsk(SimpleNamespace):
    pass


class Moment:
    def __init__(self, seconds):
        self.seconds = seconds

    def timestamp(self):
        return self.seconds


def last(price, size, seconds=1.7e9, **fields):
    return TickByTickAllLast(time=Moment(seconds), price=price, size=size, exchange="ISLAND",
                             specialConditions="", **fields)


def bidask(bid, ask, bid_size=1.0, ask_size=1.0):
    return TickByTickBidAsk(time=Moment(1.7e9), bidPrice=bid, askPrice=ask, bidSize=bid_size,
                            askSize=ask_size)


def ticker(symbol, *ticks, dom=()):
    return SimpleNamespace(contract=SimpleNamespace(symbol=symbol), tickByTicks=list(ticks),
                           domTicks=list(dom))


def test_ib_drops_non_finite_and_negative_values_and_counts_crossed_quotes():
    counters: Counter = Counter()
    ib = IbProtocol(counters)
    ib.subscribed("AAPL", depth=False)
    out = ib.tickers([ticker("AAPL", last(NAN, 1), last(INF, 1), last(1.0, -5), last(0.0, 1),
                             last(1.0, 1, seconds=0), last(2.0, 3),
                             bidask(NAN, 1.0), bidask(1.0, 2.0, bid_size=-1), bidask(2.0, 1.0)),
                      ticker("MSFT", last(1.0, 1))], TS_RECV)
    assert [(type(e).__name__, getattr(e, "price", None)) for e in out.events] == [
        ("Trade", 2.0), ("Quote", None)]
    assert counters == {("bad_input", "non_finite"): 3, ("bad_input", "bad_size"): 2,
                        ("bad_input", "bad_price"): 1, ("bad_input", "bad_time"): 1,
                        ("bad_input", "unsubscribed"): 1, ("quotes_crossed", "ib"): 1}


def test_ib_bad_depth_row_resubscribes_the_book():
    ib = IbProtocol()
    ib.subscribed("AAPL", depth=True)
    row = SimpleNamespace(side=1, position=0, operation=0, price=NAN, size=1.0)
    out = ib.tickers([ticker("AAPL", dom=[row])], TS_RECV)
    assert not out.events and [e.symbol for e in out.effects] == ["AAPL"]
    assert ib.counters["bad_input", "non_finite"] == 1


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["last", "bidask", "junk"]), odd, odd, odd,
                          st.one_of(st.floats(), st.none(), st.just("x"))), max_size=6))
def test_ib_fuzz_nothing_raises_nothing_invalid_is_published(ticks):
    ib = IbProtocol()
    ib.subscribed("AAPL", depth=True)
    made = []
    for kind, a, b, c, seconds in ticks:
        moment = Moment(seconds)
        if kind == "last":
            made.append(TickByTickAllLast(time=moment, price=a, size=b, exchange=c,
                                          specialConditions=""))
        elif kind == "bidask":
            made.append(TickByTickBidAsk(time=moment, bidPrice=a, askPrice=b, bidSize=c,
                                         askSize=1.0))
        else:
            made.append(SimpleNamespace(side=a, position=b, operation=c, price=a, size=b))
    out = ib.tickers([ticker("AAPL", *made, dom=made), SimpleNamespace()], TS_RECV)
    assert all(fit_for_the_bus(e) for e in out.events)


# --- gap counters -----------------------------------------------------------------------------

def test_a_forged_sequence_jump_is_dropped_not_a_gap_and_silences_nothing():
    tracker = SequenceTracker()
    verdicts = [tracker.check(b"trade.alpaca.AAPL|", 7, seq) for seq in (1, 2, 10**15, 3, 5)]
    assert verdicts[:4] == [True, True, False, True]  # the real ones after it get through
    assert (tracker.gaps, tracker.missed, tracker.implausible) == (1, 1, 1)
    tracker.check(b"t|", 7, 1)
    tracker.check(b"t|", 7, 2 + MAX_GAP)  # the largest gap still counted
    assert (tracker.gaps, tracker.missed) == (2, 1 + MAX_GAP)
