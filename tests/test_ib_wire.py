"""handlers.ib.sim.wire, pure: framing, the handshake, request parsing, and the messages TWS sends
as ib_async's own decoder reads them."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async.decoder import Decoder

from tickmesh.handlers.ib.sim import wire
from tickmesh.handlers.ib.sim.wire import (
    Cancel, ContractDetailsRequest, DepthRequest, FrameReader, Handshake, MarketDataRequest,
    Other, Out, Query, ServerReader, StartApi, TickByTickRequest, WireError,
)

AAPL = ["0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", ""]


def request(*fields: object) -> bytes:
    return wire.encode(*fields)


def started_reader() -> ServerReader:
    reader = ServerReader()
    assert reader.feed(wire.API_PREFIX + wire.frame(b"v157..178")) == [Handshake(157, 178)]
    assert reader.feed(request(71, 2, 7, "")) == [StartApi(7)]
    return reader


# --- framing ------------------------------------------------------------------------------------

field_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
                     max_size=30)


@given(messages=st.lists(st.lists(field_text, min_size=1, max_size=8), min_size=1, max_size=10),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_framed_messages_survive_any_split(messages, cuts):
    stream = b"".join(wire.encode(*fields) for fields in messages)
    reader = FrameReader()
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    payloads = [p for start, end in zip(bounds, bounds[1:]) for p in reader.feed(stream[start:end])]
    assert [wire.split_fields(p) for p in payloads] == messages


def test_encode_is_length_prefixed_nul_terminated_fields():
    expected = struct.pack(">I", 12) + b"1\0a\x001\x000\x001.5\0"
    assert wire.encode(1, "a", True, False, 1.5) == expected


@pytest.mark.parametrize("length", [0, wire.MAX_MESSAGE_SIZE + 1])
def test_frame_reader_rejects_impossible_lengths(length):
    with pytest.raises(WireError, match="message length"):
        FrameReader().feed(struct.pack(">I", length) + b"x")


@pytest.mark.parametrize("payload, problem", [(b"1\x002", "NUL"), (b"\xff\xfe\0", "UTF-8")])
def test_split_fields_rejects_bad_payloads(payload, problem):
    with pytest.raises(WireError, match=problem):
        wire.split_fields(payload)


# --- what a client sends ------------------------------------------------------------------------

def test_handshake_accepts_options_and_rejects_other_prefixes():
    assert wire.parse_handshake(b"v100..178 +PACEAPI") == Handshake(100, 178)
    for bad in (b"100..178", b"v100", b"vX..178"):
        with pytest.raises(WireError):
            wire.parse_handshake(bad)
    with pytest.raises(WireError, match="API"):
        ServerReader().feed(b"GET / HTTP/1.1\r\n")


def test_prefix_may_arrive_a_byte_at_a_time():
    reader = ServerReader()
    data = wire.API_PREFIX + wire.frame(b"v157..178")
    parsed = [r for i in range(len(data)) for r in reader.feed(data[i:i + 1])]
    assert parsed == [Handshake(157, 178)]


def test_requests_parse_as_ib_async_lays_them_out():
    reader = started_reader()
    contract = wire.Contract(0, "AAPL", "STK", strike="0.0", exchange="SMART", currency="USD")
    assert reader.feed(request(1, 11, 3, *AAPL, False, "", True, False, "")) == [
        MarketDataRequest(3, contract, snapshot=True)]
    assert reader.feed(request(10, 5, 4, *AAPL, 5, True, "")) == [
        DepthRequest(4, contract, rows=5, smart=True)]
    assert reader.feed(request(97, 5, *AAPL, "AllLast", 0, False)) == [
        TickByTickRequest(5, contract, "AllLast")]
    assert reader.feed(request(9, 8, 6, *AAPL, False, "", "", "")) == [
        ContractDetailsRequest(6, contract)]
    assert reader.feed(request(2, 2, 3) + request(11, 1, 4, True) + request(98, 5)) == [
        Cancel(Out.CANCEL_MKT_DATA, 3), Cancel(Out.CANCEL_MKT_DEPTH, 4),
        Cancel(Out.CANCEL_TICK_BY_TICK_DATA, 5)]
    assert reader.feed(request(61, 1) + request(6, 2, True, "DU1") + request(6, 2, False, "DU1")
                       + request(7, 3, 8, 0, "", "", "", "", "", "") + request(59, 1, 3)) == [
        Query(Out.REQ_POSITIONS), Query(Out.REQ_ACCOUNT_UPDATES, account="DU1"), Other(6),
        Query(Out.REQ_EXECUTIONS, req_id=8), Other(59)]


@pytest.mark.parametrize("fields, problem", [
    (["x"], "msgId"),
    (["71", "2"], "clientId"),
    (["1", "11", "3", *AAPL[:5]], "field"),
    (["10", "5", "4", *AAPL, "five", "0", ""], "numRows"),
    (["97", "5", *AAPL[:3]], "contract"),
])
def test_malformed_requests_are_wire_errors(fields, problem):
    with pytest.raises(WireError, match=problem):
        wire.parse_request(fields)


# --- what TWS sends, as ib_async reads it ---------------------------------------------------------

class Recorder:
    """Stands in for ib_async's Wrapper: records each callback the Decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


def decoded(message: bytes) -> list[tuple]:
    recorder = Recorder()
    decoder = Decoder(recorder, wire.SERVER_VERSION)
    decoder.interpret(wire.split_fields(FrameReader().feed(message)[0]))
    return recorder.calls


def test_market_data_messages_decode_in_ib_async():
    assert decoded(wire.tick_price(3, 1, 101.25, 300.0)) == [("priceSizeTick", 3, 1, 101.25, 300.0)]
    assert decoded(wire.tick_size(3, 8, 1200.0)) == [("tickSize", 3, 8, 1200.0)]
    assert decoded(wire.depth(4, 2, 0, 1, 99.5, 100.0)) == [
        ("updateMktDepth", 4, 2, 0, 1, 99.5, 100.0)]
    assert decoded(wire.depth_l2(4, 0, "NSDQ", 2, 0, 100.5, 0.0)) == [
        ("updateMktDepthL2", 4, 0, "NSDQ", 2, 0, 100.5, 0.0, True)]
    [(name, req_id, tick_type, when, price, size, _attrib, exchange, conditions)] = decoded(
        wire.tick_by_tick_last(5, 2, 1_700_000_000, 100.01, 200.0, "ARCA", "I"))
    assert (name, req_id, tick_type, when, price, size, exchange, conditions) == (
        "tickByTickAllLast", 5, 2, 1_700_000_000, 100.01, 200.0, "ARCA", "I")
    [(name, *values, _attrib)] = decoded(wire.tick_by_tick_bid_ask(6, 1, 99.0, 99.1, 5.0, 7.0))
    assert (name, *values) == ("tickByTickBidAsk", 6, 1, 99.0, 99.1, 5.0, 7.0)
    assert decoded(wire.tick_by_tick_midpoint(7, 1, 99.05)) == [("tickByTickMidPoint", 7, 1, 99.05)]


def test_session_messages_decode_in_ib_async():
    assert decoded(wire.error(-1, 326, "in use")) == [("error", -1, 326, "in use", "")]
    assert decoded(wire.next_valid_id(9)) == [("nextValidId", 9)]
    assert decoded(wire.managed_accounts(["DU1", "DU2"])) == [("managedAccounts", "DU1,DU2")]
    ends = {
        Query(Out.REQ_POSITIONS): ("positionEnd",),
        Query(Out.REQ_OPEN_ORDERS): ("openOrderEnd",),
        Query(Out.REQ_COMPLETED_ORDERS): ("completedOrdersEnd",),
        Query(Out.REQ_ACCOUNT_UPDATES, account="DU1"): ("accountDownloadEnd", "DU1"),
        Query(Out.REQ_ACCOUNT_UPDATES_MULTI, req_id=4): ("accountUpdateMultiEnd", 4),
        Query(Out.REQ_EXECUTIONS, req_id=5): ("execDetailsEnd", 5),
    }
    for query, call in ends.items():
        assert decoded(wire.end_of(query, "DU1")) == [call]


def test_stock_details_decode_into_a_qualified_contract():
    [(name, req_id, details)] = decoded(wire.stock_details(8, 100001, "BRK B", "SMART", "NYSE"))
    contract = details.contract
    assert (name, req_id) == ("contractDetails", 8)
    assert (contract.conId, contract.symbol, contract.secType, contract.exchange,
            contract.primaryExchange, contract.currency) == (100001, "BRK B", "STK", "SMART",
                                                              "NYSE", "USD")
    assert (details.minTick, details.stockType, details.timeZoneId) == (0.01, "COMMON",
                                                                        "US/Eastern")
    assert decoded(wire.contract_details_end(8)) == [("contractDetailsEnd", 8)]
