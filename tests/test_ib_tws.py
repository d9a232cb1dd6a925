"""handlers.ib.sim.session, pure: the fake TWS's sessions — handshake, client ids, contract lookups,
subscriptions, IB connectivity — without a socket."""

from __future__ import annotations

import random

import pytest

from tickmesh.handlers.ib.sim import wire
from tickmesh.handlers.ib.sim.market import Market
from tickmesh.handlers.ib.sim.session import Session, Tws
from tickmesh.handlers.ib.sim.wire import FrameReader, In, WireError, split_fields

AAPL = ["0", "AAPL", "STK", "", "0.0", "", "", "SMART", "", "USD", "", ""]
NOPE = ["0", "NOPE", "STK", "", "0.0", "", "", "SMART", "", "USD", "", ""]


def fields_of(messages: list[bytes]) -> list[list[str]]:
    reader = FrameReader()
    return [split_fields(p) for message in messages for p in reader.feed(message)]


def ids(messages: list[bytes]) -> list[int]:
    return [int(f[0]) for f in fields_of(messages)]


def make_tws() -> Tws:
    rng = random.Random(1)
    return Tws([Market("AAPL", 10, rng), Market("MSFT", 10, rng)], clock=lambda: 1_700_000_000.0)


def connect(tws: Tws, client_id: int = 1) -> tuple[Session, list[bytes]]:
    session = tws.open()
    hello = session.receive(wire.API_PREFIX + wire.frame(b"v157..178"))
    assert fields_of(hello) == [["178", "20231114 22:13:20 UTC"]]
    return session, session.receive(wire.encode(71, 2, client_id, ""))


def test_start_api_sends_accounts_next_id_and_farm_notices():
    _, replies = connect(make_tws())
    assert fields_of(replies)[:2] == [["15", "1", "DU1234567"], ["9", "1", "1"]]
    assert [f[3] for f in fields_of(replies)[2:]] == ["2104", "2106", "2158"]


def test_a_client_id_in_use_gets_326_and_the_session_closes():
    tws = make_tws()
    first, _ = connect(tws, client_id=5)
    second, replies = connect(tws, client_id=5)
    assert [f[3] for f in fields_of(replies)] == ["326"] and second.closed
    tws.close(second)
    tws.close(first)
    third, replies = connect(tws, client_id=5)
    assert not third.closed and ids(replies)[:2] == [In.MANAGED_ACCTS, In.NEXT_VALID_ID]


@pytest.mark.parametrize("data, problem", [
    (wire.API_PREFIX + wire.frame(b"v100..150"), "no common version"),
    (wire.API_PREFIX + wire.frame(b"v157..178") + wire.encode(61, 1), "before startApi"),
    (b"\x16\x03\x01\x02\x00", "API"),
])
def test_bad_openings_are_wire_errors(data, problem):
    with pytest.raises(WireError, match=problem):
        make_tws().open().receive(data)


def test_unknown_symbols_get_error_200_known_ones_details():
    tws = make_tws()
    session, _ = connect(tws)
    details = fields_of(session.receive(wire.encode(9, 8, 1, *AAPL, False, "", "", "")))
    assert [d[0] for d in details] == ["10", "52"] and details[0][12] == "100001"
    for request in (wire.encode(9, 8, 2, *NOPE, False, "", "", ""),
                    wire.encode(97, 3, *NOPE, "AllLast", 0, False),
                    wire.encode(10, 5, 4, *NOPE, 5, False, "")):
        [error] = fields_of(session.receive(request))
        assert error[:4] == ["4", "2", error[2], "200"]
    assert session.streams == {}


def test_subscriptions_stream_until_cancelled_and_not_while_ib_is_unreachable():
    tws = make_tws()
    session, _ = connect(tws)
    initial = session.receive(wire.encode(10, 5, 7, *AAPL, 3, False, "")
                              + wire.encode(97, 8, *AAPL, "BidAsk", 0, False))
    assert ids(initial) == [In.MARKET_DEPTH] * 6 + [In.TICK_BY_TICK]
    assert set(ids(tws.advance(200)[session])) == {In.MARKET_DEPTH, In.TICK_BY_TICK}
    lost = tws.set_online(False)
    assert [f[3] for f in fields_of(lost[session])] == ["1100"] and tws.advance(50) == {}
    assert [f[3] for f in fields_of(tws.set_online(True)[session])] == ["1102"]
    session.receive(wire.encode(11, 1, 7, False) + wire.encode(98, 8))
    assert tws.advance(200).get(session, []) == []


def test_snapshot_market_data_ends_and_does_not_stream():
    tws = make_tws()
    session, _ = connect(tws)
    replies = session.receive(wire.encode(1, 11, 9, *AAPL, False, "", True, False, ""))
    assert ids(replies)[-1] == In.TICK_SNAPSHOT_END
    assert In.TICK_PRICE in ids(replies) and tws.advance(100).get(session, []) == []


def test_startup_queries_are_answered_with_their_end_markers():
    session, _ = connect(make_tws())
    replies = session.receive(wire.encode(61, 1) + wire.encode(5, 1) + wire.encode(99, False)
                              + wire.encode(6, 2, True, "DU1234567")
                              + wire.encode(76, 1, 3, "DU1234567", "", False)
                              + wire.encode(7, 3, 4, 0, "", "", "", "", "", "")
                              + wire.encode(59, 1, 1))
    assert ids(replies) == [In.POSITION_END, In.OPEN_ORDER_END, In.COMPLETED_ORDERS_END,
                            In.ACCT_DOWNLOAD_END, In.ACCOUNT_UPDATE_MULTI_END,
                            In.EXECUTION_DATA_END]
