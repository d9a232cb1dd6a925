"""The fake TWS as a real process on a real TCP port, driven by the real client library
(ib_async) and by garbage."""

from __future__ import annotations

import asyncio
import itertools
import socket
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ib_async import IB, Stock
from ib_async.objects import TickByTickAllLast

from tickmesh.bus.events import Heartbeat
from tickmesh.handlers.ib.sim import wire
from tickmesh.handlers.ib.sim.session import Tws
from tests.conftest import free_port
from tests.buslog import BusLog
from tests.ib_sim import hold_client_id, start_ib_sim, until
from tests.simulators import listening
from tests.waiting import wait_until


def test_ib_async_connects_at_once_and_receives_every_kind_of_data(spawn_child):
    sim = start_ib_sim(spawn_child, symbols=["AAPL", "MSFT"], rate=200)

    async def session() -> None:
        ib = IB()
        errors: list[tuple[int, str]] = []
        ib.errorEvent += lambda req_id, code, text, contract: errors.append(
            (code, contract.symbol if contract else ""))
        started = time.monotonic()
        await ib.connectAsync("127.0.0.1", sim.port, clientId=1, timeout=5)  # every startup request
        assert time.monotonic() - started < 2.0, "a startup request went unanswered"
        assert ib.client.getAccounts() == ["DU1234567"]
        aapl, nope = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"),
                                                    Stock("NOPE", "SMART", "USD"))
        assert nope is None and (200, "NOPE") in errors
        assert aapl.conId and aapl.primaryExchange == "NASDAQ"
        market = ib.reqMktData(aapl)
        trades = ib.reqTickByTickData(aapl, "AllLast")
        depth = ib.reqMktDepth(aapl, numRows=5)
        seen = {"trade": 0, "depth": 0}

        def everything_arrived() -> bool:
            seen["trade"] += sum(isinstance(t, TickByTickAllLast) for t in trades.tickByTicks)
            seen["depth"] += len(depth.domTicks)
            return market.bid > 0 and market.ask > market.bid and market.volume > 0 and all(
                count >= 5 for count in seen.values())

        await until(ib, everything_arrived, "quotes, trades and depth")
        ib.disconnect()

    asyncio.run(session())
    assert sim.proc.poll() is None


def test_a_client_id_in_use_is_refused_with_326(spawn_child):
    sim = start_ib_sim(spawn_child, symbols=["AAPL"])
    holder = hold_client_id(sim.port, 7)

    async def second_client() -> list[int]:
        ib = IB()
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
        try:
            await ib.connectAsync("127.0.0.1", sim.port, clientId=7, timeout=1)
        except TimeoutError:
            pass
        return codes

    assert asyncio.run(second_client()) == [326]
    holder.close()
    wait_until(lambda: _can_start(sim.port, 7), timeout=5, what="client id 7 to be free again")


def _can_start(port: int, client_id: int) -> bool:
    try:
        hold_client_id(port, client_id).close()
        return True
    except ConnectionError:
        return False


def test_the_cli_serves_the_symbols_it_is_given(spawn):
    port = free_port()
    proc = spawn([sys.executable, "-m", "tickmesh.cli", "sim", "ib", "--port", str(port),
                  "--symbols", "AAPL", "--rate", "5"])
    wait_until(lambda: listening(port) or proc.poll() is not None, what="the cli simulator")

    async def lookup() -> list:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=5)
        found = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"),
                                               Stock("MSFT", "SMART", "USD"))
        ib.disconnect()
        return [c.symbol if c else None for c in found]

    assert asyncio.run(lookup()) == ["AAPL", None]


HELLO = wire.API_PREFIX + wire.frame(b"v157..178")
field_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=["Cs"]),
                     max_size=12)


def test_garbage_is_counted_and_closes_only_that_connection(spawn_child, forwarder):
    sim = start_ib_sim(spawn_child, symbols=["AAPL"], rate=50)
    heartbeats = BusLog(forwarder.subscribe, ["heartbeat.ib-sim"])
    client_ids = itertools.count(100)
    rejected = 0

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(opening=st.sampled_from(["none", "hello", "started"]),
           tail=st.one_of(st.binary(min_size=1, max_size=64),
                          st.lists(field_text, min_size=1, max_size=6).map(
                              lambda fields: wire.encode(*fields))))
    def send(opening: str, tail: bytes) -> None:
        nonlocal rejected
        start = wire.encode(71, 2, next(client_ids), "") if opening == "started" else b""
        data = (HELLO + start if opening != "none" else b"") + tail
        try:
            Tws([]).open().receive(data)
            bad = False
        except wire.WireError:
            bad = True
        with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as sock:
            sock.sendall(data)
            if bad:
                rejected += 1
                assert _closed_by_peer(sock), f"still open after {data!r}"

    send()
    assert rejected > 20
    heartbeats.until(lambda events: any(isinstance(e, Heartbeat) and
                                        e.metric("bad_input", reason="tws_api") == rejected for e in events),
                     what=f"the simulator to count {rejected} bad inputs")
    hold_client_id(sim.port, 1).close()
    assert sim.proc.poll() is None
    heartbeats.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        while sock.recv(65536):
            pass  # replies sent before the bad bytes (the server hello, accounts...)
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
