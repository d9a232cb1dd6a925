"""The Polygon protocol module: normalizers on the documentation's own sample messages, and
no input, however malformed, gets past it as anything but a Malformed error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.bus.events import Bar, Quote, Trade, encode
from tickmesh.handlers.common.protocol import Change, Output
from tickmesh.handlers.polygon import protocol, wire

TS_RECV = 1_700_000_000_000_000_000

# The sample messages of Polygon's WebSocket documentation (stocks T, Q, A, AM).
DOC_TRADE = {"ev": "T", "sym": "MSFT", "x": 4, "i": "12345", "z": 3, "p": 114.125, "s": 100,
             "c": [0, 12], "t": 1536036818784, "q": 3681328}
DOC_QUOTE = {"ev": "Q", "sym": "MSFT", "bx": 4, "bp": 114.125, "bs": 100, "ax": 7, "ap": 114.128,
             "as": 160, "c": 0, "i": [604], "t": 1536036818784, "q": 50385480, "z": 3}
DOC_SECOND = {"ev": "A", "sym": "SPCE", "v": 200, "av": 8642007, "op": 25.66, "vw": 25.3981,
              "o": 25.39, "c": 25.39, "h": 25.39, "l": 25.39, "a": 25.3714, "z": 50,
              "s": 1610144868000, "e": 1610144869000}
DOC_MINUTE = {"ev": "AM", "sym": "GTE", "v": 4110, "av": 9470157, "op": 0.4372, "vw": 0.4488,
              "o": 0.4488, "c": 0.4486, "h": 0.4489, "l": 0.4486, "a": 0.4352, "z": 685,
              "s": 1610144640000, "e": 1610144700000}


def test_trade_sample_normalizes():
    trade = protocol.normalize_trade(DOC_TRADE, TS_RECV)
    assert trade == Trade(
        provider="polygon", symbol="MSFT", ts_event=1536036818784_000_000, ts_recv=TS_RECV,
        price=114.125, size=100.0, trade_id="12345", exchange="4", conditions=["0", "12"],
    )


def test_quote_sample_normalizes():
    quote = protocol.normalize_quote(DOC_QUOTE, TS_RECV)
    assert quote == Quote(
        provider="polygon", symbol="MSFT", ts_event=1536036818784_000_000, ts_recv=TS_RECV,
        bid_price=114.125, bid_size=100.0, ask_price=114.128, ask_size=160.0,
        bid_exchange="4", ask_exchange="7",
    )


@pytest.mark.parametrize("sample, interval", [(DOC_SECOND, 1), (DOC_MINUTE, 60)])
def test_aggregate_samples_normalize(sample, interval):
    bar = protocol.normalize_bar(sample, TS_RECV)
    assert bar == Bar(
        provider="polygon", symbol=sample["sym"], ts_event=sample["s"] * 1_000_000,
        ts_recv=TS_RECV, interval_s=interval, open=sample["o"], high=sample["h"],
        low=sample["l"], close=sample["c"], volume=float(sample["v"]), vwap=sample["vw"],
    )
    assert (sample["e"] - sample["s"]) // 1000 == interval


def test_normalizers_are_keyed_by_event_type():
    frame = json.dumps([DOC_TRADE, DOC_QUOTE, DOC_SECOND, DOC_MINUTE])
    events = [protocol.NORMALIZERS[wire.event_type(m)](m, TS_RECV) for m in wire.decode_frame(frame)]
    assert [type(e).__name__ for e in events] == ["Trade", "Quote", "Bar", "Bar"]


def test_trade_without_conditions_and_dotted_symbol():
    raw = {"ev": "T", "sym": "BRK.B", "x": 12, "i": "7", "p": 410.5, "s": 3, "t": 1}
    trade = protocol.normalize_trade(raw, TS_RECV)
    assert (trade.symbol, trade.conditions, trade.exchange) == ("BRK.B", [], "12")


@pytest.mark.parametrize("raw, kind", [
    ({**DOC_TRADE, "p": "114.125"}, "T"),           # price as a string
    ({**DOC_TRADE, "t": 1.5}, "T"),                 # fractional timestamp
    ({**DOC_TRADE, "sym": ""}, "T"),                # empty symbol
    ({**DOC_TRADE, "sym": "A|B"}, "T"),             # would break the bus topic
    ({**DOC_TRADE, "t": 10**19}, "T"),              # would overflow nanoseconds
    ({k: v for k, v in DOC_QUOTE.items() if k != "bp"}, "Q"),
    ({**DOC_SECOND, "ev": "AM", "h": None}, "AM"),
    ({**DOC_SECOND, "ev": "X"}, "aggregate"),
])
def test_bad_messages_are_malformed(raw, kind):
    normalize = protocol.NORMALIZERS.get(raw["ev"], protocol.normalize_bar)
    with pytest.raises(wire.Malformed) as info:
        normalize(raw, TS_RECV)
    assert info.value.kind == kind


@pytest.mark.parametrize("frame", [b"not json", b'{"ev":"T"}', b"\xff\xfe", b"{[1,"])
def test_bad_frames_are_malformed(frame):
    with pytest.raises(wire.Malformed) as info:
        wire.decode_frame(frame)
    assert info.value.kind == "frame"


def test_requests_and_topics():
    assert json.loads(wire.auth_request("K")) == {"action": "auth", "params": "K"}
    topics = wire.topics_for(["T", "Q"], ["AAPL", "BRK.B"])
    assert topics == ["T.AAPL", "T.BRK.B", "Q.AAPL", "Q.BRK.B"]
    assert json.loads(wire.subscribe_request(topics, "unsubscribe")) == {
        "action": "unsubscribe", "params": "T.AAPL,T.BRK.B,Q.AAPL,Q.BRK.B"}
    assert wire.split_topic("AM.BRK.B") == ("AM", "BRK.B")
    assert wire.split_topic("T.*") == ("T", "*")
    for bad in ("AAPL", "X.AAPL", "T.", "T.A|B"):
        with pytest.raises(wire.Malformed):
            wire.split_topic(bad)


def test_status_frame_shape():
    frame = wire.encode_frame([wire.status(wire.AUTH_SUCCESS, "authenticated")])
    assert json.loads(frame) == [{"ev": "status", "status": "auth_success", "message": "authenticated"}]
    assert wire.decode_status(json.loads(frame)[0]).status == wire.AUTH_SUCCESS


# --- property: nothing crashes, everything that passes can be published ---------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    st.integers(min_value=-2, max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6), st.none(), st.booleans(), st.lists(st.integers(-1, 2**40), max_size=3),
)
WIRE_KEYS = sorted({*DOC_TRADE, *DOC_QUOTE, *DOC_SECOND, "ev"})


@st.composite
def near_misses(draw):
    """A documented sample with some fields deleted or replaced by anything."""
    message = dict(draw(st.sampled_from([DOC_TRADE, DOC_QUOTE, DOC_SECOND, DOC_MINUTE])))
    for key in draw(st.lists(st.sampled_from(WIRE_KEYS), max_size=4)):
        if draw(st.booleans()):
            message.pop(key, None)
        else:
            message[key] = draw(field_values)
    return message


@settings(max_examples=400, deadline=None)
@given(st.one_of(near_misses(), json_values))
def test_any_message_normalizes_or_is_malformed(raw):
    try:
        event = protocol.NORMALIZERS[wire.event_type(raw)](raw, TS_RECV)
    except KeyError:
        return  # an `ev` this handler does not normalize (status, LULD, ...): skipped upstream
    except wire.Malformed as exc:
        assert exc.kind and exc.reason
        return
    encode(event)  # whatever passes must be publishable on the bus


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                 json_values.map(lambda v: json.dumps(v).encode())))
def test_any_frame_decodes_or_is_malformed(data):
    try:
        messages = wire.decode_frame(data)
    except wire.Malformed as exc:
        assert exc.kind == "frame"
        return
    assert isinstance(messages, list)


# --- the client state machine -----------------------------------------------------------------

def frame(*messages) -> bytes:
    return json.dumps(list(messages)).encode()


def test_session_authenticates_first_then_subscribes_and_streams():
    session = protocol.PolygonProtocol("KEY", ["T.AAPL", "Q.AAPL"])
    assert session.start() == Output()
    out = session.receive(frame(wire.status("connected", "Connected Successfully")), TS_RECV)
    assert out.changes == [Change("connected")]
    assert [json.loads(r) for r in out.replies] == [{"action": "auth", "params": "KEY"}]
    out = session.receive(frame(wire.status("auth_success", "authenticated")), TS_RECV)
    assert out.changes == [Change("authenticated")]
    assert [json.loads(r) for r in out.replies] == [{"action": "subscribe", "params": "T.AAPL,Q.AAPL"}]
    out = session.receive(frame(wire.status("success", "subscribed to: T.AAPL")), TS_RECV)
    assert out.changes == []
    out = session.receive(
        frame(wire.status("success", "subscribed to: Q.AAPL"), {**DOC_TRADE, "sym": "AAPL"}), TS_RECV)
    assert [c.state for c in out.changes] == ["subscribed"]
    assert [e.symbol for e in out.events] == ["AAPL"]
    assert not out.close


@pytest.mark.parametrize("state", ["auth_failed", "auth_timeout", "max_connections"])
def test_fatal_statuses_are_errors_that_close(state):
    session = protocol.PolygonProtocol("KEY", ["T.AAPL"])
    session.start()
    out = session.receive(frame(wire.status(state, "why")), TS_RECV)
    assert out.changes == [Change("error", message=f"{state}: why")] and out.close


def test_bad_input_is_counted_reported_once_and_skipped():
    session = protocol.PolygonProtocol("KEY", ["T.AAPL", "Q.MSFT"])
    session.start()
    first = session.receive(b"garbage", TS_RECV)
    second = session.receive(b"garbage", TS_RECV)
    assert first.problem.startswith("frame:") and second.problem == ""
    out = session.receive(frame({**DOC_TRADE, "p": "x"}, 7, {"ev": "LULD"}, DOC_QUOTE), TS_RECV)
    assert [type(e).__name__ for e in out.events] == ["Quote"]
    assert "T:" in out.problem and "unknown event type 'LULD'" in out.problem
    assert session.counters == {("bad_input", reason): count for reason, count in (
        ("malformed_frame", 2), ("malformed_T", 1), ("malformed_message", 1), ("unknown_ev", 1))}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(near_misses(), json_values,
                          st.builds(wire.status, st.text(max_size=12), st.text(max_size=12))),
                max_size=5))
def test_session_never_raises(messages):
    session = protocol.PolygonProtocol("KEY", ["T.AAPL"])
    session.start()
    out = session.receive(json.dumps(messages).encode(), TS_RECV)
    assert len(out.events) <= len(messages)
