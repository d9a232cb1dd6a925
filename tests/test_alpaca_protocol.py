"""The Alpaca wire format and client protocol, pure: frames in, events and replies out."""

from __future__ import annotations

import json
from collections import Counter

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.bus.events import Quote, Trade
from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.protocol import AlpacaProtocol
from tickmesh.handlers.common.protocol import Output

# The samples of Alpaca's market-data stream documentation.
DOC_TRADE = {"T": "t", "S": "AAPL", "i": 96921, "x": "D", "p": 126.55, "s": 1,
             "t": "2021-02-22T15:51:44.208Z", "c": ["@", "I"], "z": "C"}
DOC_QUOTE = {"T": "q", "S": "AMD", "bx": "U", "bp": 87.66, "bs": 1, "ax": "Q", "ap": 87.68,
             "as": 4, "t": "2021-02-22T15:51:45.335689322Z", "c": ["R"], "z": "C"}
DOC_TRADE_NS = 1614009104208000000
DOC_QUOTE_NS = 1614009105335689322
TS_RECV = 1614009106000000000


def frame(messages: list[dict], encoding: str) -> bytes:
    """A server frame as Alpaca sends it; msgpack times via the msgpack library itself."""
    if encoding == wire.JSON:
        return json.dumps(messages).encode()
    converted = [{k: msgpack.Timestamp.from_unix_nano(wire.parse_timestamp(v)) if k == "t" else v
                  for k, v in m.items()} for m in messages]
    return msgpack.packb(converted)


def subscribed_protocol(encoding: str) -> AlpacaProtocol:
    protocol = AlpacaProtocol(key="k", secret="s", symbols=["AAPL", "AMD"], encoding=encoding)
    protocol.start()
    for reply in ([{"T": "success", "msg": "connected"}],
                  [{"T": "success", "msg": "authenticated"}],
                  [{"T": "subscription", "trades": ["AAPL", "AMD"], "quotes": ["AAPL", "AMD"]}]):
        protocol.receive(frame(reply, encoding), TS_RECV)
    assert protocol.stage == "subscribed"
    return protocol


@pytest.mark.parametrize("encoding", wire.ENCODINGS)
def test_documented_trade_and_quote_normalize_exactly(encoding):
    protocol = subscribed_protocol(encoding)
    out = protocol.receive(frame([DOC_TRADE, DOC_QUOTE], encoding), TS_RECV)
    assert out.events == [
        Trade(provider="alpaca", symbol="AAPL", ts_event=DOC_TRADE_NS, ts_recv=TS_RECV,
              price=126.55, size=1.0, trade_id="96921", exchange="D", conditions=["@", "I"]),
        Quote(provider="alpaca", symbol="AMD", ts_event=DOC_QUOTE_NS, ts_recv=TS_RECV,
              bid_price=87.66, bid_size=1.0, ask_price=87.68, ask_size=4.0,
              bid_exchange="U", ask_exchange="Q"),
    ]
    assert not out.replies and not out.changes and not out.problem


@pytest.mark.parametrize("encoding", wire.ENCODINGS)
def test_handshake_auth_then_subscribe(encoding):
    protocol = AlpacaProtocol(key="KEY", secret="SECRET", symbols=["AAPL", "BRK.B"],
                              channels=["trades"], encoding=encoding)
    decode = json.loads if encoding == wire.JSON else msgpack.unpackb
    assert protocol.headers() == ({"Content-Type": "application/msgpack"}
                                  if encoding == wire.MSGPACK else {})
    protocol.start()
    out = protocol.receive(frame([{"T": "success", "msg": "connected"}], encoding), TS_RECV)
    assert [c.state for c in out.changes] == ["connected"]
    assert [decode(r) for r in out.replies] == [
        {"action": "auth", "key": "KEY", "secret": "SECRET"}]
    out = protocol.receive(frame([{"T": "success", "msg": "authenticated"}], encoding), TS_RECV)
    assert [c.state for c in out.changes] == ["authenticated"]
    assert [decode(r) for r in out.replies] == [
        {"action": "subscribe", "trades": ["AAPL", "BRK.B"]}]
    out = protocol.receive(frame([{"T": "subscription", "trades": ["AAPL", "BRK.B"], "quotes": [],
                                   "corrections": ["AAPL", "BRK.B"]}], encoding), TS_RECV)
    assert out.changes[0].state == "subscribed" and "AAPL, BRK.B" in out.changes[0].message
    assert protocol.subscription.trades == ["AAPL", "BRK.B"]
    assert protocol.start() == Output() and protocol.stage == "connecting"


def test_auth_failure_is_an_error_that_closes_the_connection():
    protocol = AlpacaProtocol(key="k", secret="s", symbols=["AAPL"], encoding=wire.JSON)
    protocol.start()
    protocol.receive(b'[{"T":"success","msg":"connected"}]', TS_RECV)
    out = protocol.receive(b'[{"T":"error","code":402,"msg":"auth failed"}]', TS_RECV)
    assert [(c.state, c.code, c.message) for c in out.changes] == [("error", 402, "auth failed")]
    assert out.close and not out.replies


def test_symbol_limit_error_keeps_the_connection():
    protocol = subscribed_protocol(wire.JSON)
    out = protocol.receive(b'[{"T":"error","code":405,"msg":"symbol limit exceeded"}]', TS_RECV)
    assert out.changes[0].code == 405 and not out.close


def test_unhandled_types_and_malformed_messages_are_counted_and_skipped():
    counters: Counter = Counter()
    protocol = AlpacaProtocol(key="k", secret="s", symbols=["AAPL"], encoding=wire.JSON,
                              counters=counters)
    bar = {"T": "b", "S": "AAPL", "o": 1, "h": 1, "l": 1, "c": 1, "v": 1, "t": DOC_TRADE["t"]}
    bad_time = {**DOC_TRADE, "t": "yesterday"}
    no_price = {k: v for k, v in DOC_TRADE.items() if k != "p"}
    out = protocol.receive(frame([bar, DOC_TRADE, bad_time, no_price], wire.JSON), 1)
    assert [e.symbol for e in out.events] == ["AAPL"]
    assert counters == {("bad_input", "unhandled"): 1, ("bad_input", "malformed"): 1,
                        ("bad_input", "bad_time"): 1}
    assert out.problem
    out = protocol.receive(b"not json at all", 1)
    assert not out.events and counters["bad_input", "malformed"] == 2
    assert "undecodable" in out.problem


def test_unexpected_control_message_is_counted():
    protocol = AlpacaProtocol(key="k", secret="s", symbols=["AAPL"], encoding=wire.JSON)
    protocol.start()
    out = protocol.receive(b'[{"T":"success","msg":"authenticated"}]', TS_RECV)
    assert not out.replies and protocol.counters["bad_input", "unexpected"] == 1 and "unexpected" in out.problem


def test_settings_are_checked():
    with pytest.raises(ValueError, match="channels"):
        AlpacaProtocol(key="k", secret="s", symbols=["A"], channels=["bars"])
    with pytest.raises(ValueError, match="encoding"):
        AlpacaProtocol(key="k", secret="s", symbols=["A"], encoding="xml")


# --- timestamps ----------------------------------------------------------------------------

NANOS = st.integers(min_value=0, max_value=2**63 - 1)


@given(NANOS)
def test_timestamp_extension_matches_the_msgpack_library(ns):
    ours = msgspec.msgpack.encode(wire.timestamp_ext(ns))
    assert ours == msgpack.packb(msgpack.Timestamp.from_unix_nano(ns))
    ext = msgspec.msgpack.decode(ours, type=msgspec.msgpack.Ext)
    assert wire.ext_to_ns(ext) == ns


@given(st.integers(min_value=0, max_value=253402300799 * wire.NS))
def test_rfc3339_round_trip(ns):
    assert wire.parse_timestamp(wire.format_timestamp(ns)) == ns


def test_rfc3339_forms():
    assert wire.format_timestamp(DOC_QUOTE_NS) == DOC_QUOTE["t"]
    assert wire.format_timestamp(DOC_TRADE_NS) == DOC_TRADE["t"]  # trailing zeros dropped
    assert wire.parse_timestamp("2021-02-22T10:51:45.335689322-05:00") == DOC_QUOTE_NS
    assert wire.parse_timestamp("2021-02-22T15:51:45Z") == DOC_QUOTE_NS // wire.NS * wire.NS
    for bad in ("2021-02-22T15:51:45", "2021-02-22T15:51:45.Z", "2021-02-22T15:51:45.1234567890Z",
                "2021-02-22 15:51:45Z", "2021-02-22T15:51:45+0500", "２０２１-02-22T15:51:45Z"):
        with pytest.raises(ValueError):
            wire.parse_timestamp(bad)


# --- no input crashes it -------------------------------------------------------------------

SCALARS = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
           | st.floats(allow_nan=False) | st.text())
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
FIELDS = {**{k: st.just(v) for k, v in DOC_TRADE.items()},
          "T": st.sampled_from(["t", "q", "b", "success", "error", "subscription", "zz"])}
MESSAGE = st.fixed_dictionaries(
    {}, optional={**FIELDS, **{k: JSONISH for k in ("S", "p", "s", "t", "i", "c", "msg", "code")}})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(wire.ENCODINGS), st.binary(max_size=200))
def test_random_bytes_never_crash(encoding, data):
    assert_survives(AlpacaProtocol(key="k", secret="s", symbols=["AAPL"], encoding=encoding), data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(wire.ENCODINGS), st.lists(MESSAGE | JSONISH, max_size=5) | JSONISH)
def test_odd_messages_never_crash(encoding, messages):
    encode = msgspec.json.encode if encoding == wire.JSON else msgspec.msgpack.encode
    assert_survives(AlpacaProtocol(key="k", secret="s", symbols=["AAPL"], encoding=encoding),
                    encode(messages))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=16), st.integers(-128, 127))
def test_odd_timestamp_extensions_never_crash(data, code):
    message = msgspec.msgpack.encode([{**DOC_TRADE, "t": msgspec.msgpack.Ext(code, data)}])
    assert_survives(AlpacaProtocol(key="k", secret="s", symbols=["AAPL"]), message)


def assert_survives(protocol: AlpacaProtocol, data: bytes) -> None:
    protocol.start()
    out = protocol.receive(data, TS_RECV)
    for event in out.events:  # whatever came out can be encoded
        assert 0 <= event.ts_event < 2**63
        msgspec.msgpack.encode(event)
    accounted = sum(protocol.counters.values()) or out.events or out.changes or out.replies
    assert accounted or _decodes_to_empty_list(data, protocol.encoding)


def _decodes_to_empty_list(data: bytes, encoding: str) -> bool:
    module = msgspec.json if encoding == wire.JSON else msgspec.msgpack
    try:
        return module.decode(data) == []
    except msgspec.DecodeError:
        return False
