"""The IB handler as a real process, between the fake TWS on a TCP port and a real bus: its
book against the simulator's own, IB outages, dropped connections, a frozen TWS, a TWS restart,
a client id in use, an unknown symbol."""

from __future__ import annotations

import asyncio

import pytest
from ib_async import IB, Stock

from tickmesh.bus.events import BookDelta, BookSnapshot, Heartbeat, Quote, Status, Trade
from tickmesh.runtime.settings import read
from tickmesh.handlers.ib.handler import IbSettings
from tests.books import apply_levels
from tests.conftest import free_port, kill_group
from tests.buslog import BusLog
from tests.ib_sim import IbSim, hold_client_id, start_ib_sim, until

SYMBOLS = ["AAPL", "MSFT"]
HANDLER_SETTINGS = {"symbols": SYMBOLS, "depth_rows": 5, "backoff_min": 0.1, "backoff_max": 0.4,
                    "timeout": 3.0}
BUS_PATTERNS = [f"{kind}.ib" for kind in
                ("trade", "quote", "book_snapshot", "book_delta", "status", "heartbeat")]


def handler_on_the_bus(bus: BusLog) -> None:
    """Wait for the handler, started before TWS is up, to show its failed attempts on the bus:
    from then on what it publishes reaches us (the first events of a new publisher can be
    lost)."""
    bus.until(lambda _: ("disconnected", 0) in bus.state_codes(), what="the handler on the bus")


def flowing(bus: BusLog, mark: int, symbols: list[str], kinds=(Trade, Quote, BookSnapshot)):
    """A condition: every kind of event for every symbol since `mark`."""
    return lambda _events: all(
        any(e.symbol == symbol for e in bus.of(kind, mark))
        for kind in kinds for symbol in symbols
    )


def subscribed_again(bus: BusLog, mark: int) -> None:
    """Disconnected, then all the way to subscribed, then fresh data for every symbol."""
    resubscribed = bus.until(lambda _: bus.resubscribed(mark),
                             what="a reconnect all the way to subscribed")
    bus.until(flowing(bus, resubscribed, SYMBOLS), what="fresh trades, quotes and books")


def disconnects(bus: BusLog, since: int) -> list[Status]:
    return [s for s in bus.of(Status, since) if s.state == "disconnected"]


# --- the book -------------------------------------------------------------------------------------

class Book:
    """What a consumer rebuilds from BookSnapshot and BookDelta."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, event: BookSnapshot | BookDelta) -> None:
        if isinstance(event, BookSnapshot):
            self.bids, self.asks = {}, {}
        apply_levels((self.bids, self.asks), event.bids, event.asks)


def simulators_book(port: int, symbol: str, rows: int) -> tuple[dict, dict]:
    """The simulator's own top `rows` rows, as a fresh depth subscription receives them."""
    async def ask() -> tuple[dict, dict]:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=99, timeout=5)
        [contract] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
        ticker = ib.reqMktDepth(contract, numRows=rows)
        await until(ib, lambda: len(ticker.domBids) == len(ticker.domAsks) == rows,
                    what=f"{rows} rows each side")
        ib.disconnect()
        return ({level.price: level.size for level in ticker.domBids},
                {level.price: level.size for level in ticker.domAsks})

    return asyncio.run(ask())


def freeze_and_compare_books(bus: BusLog, sim: IbSim) -> dict[str, tuple[dict, dict]]:
    """Stop the markets (IB outage), then check every symbol's book as a consumer rebuilds it
    from the bus against the simulator's own; returns the simulator's books."""
    sim.control("connectivity", online=0)
    bus.until(lambda _: ("disconnected", 1100) in bus.state_codes(), what="status 1100")
    books = {}
    for symbol in SYMBOLS:
        book = Book()
        for event in bus.events:
            if isinstance(event, (BookSnapshot, BookDelta)) and event.symbol == symbol:
                book.apply(event)
        books[symbol] = simulators_book(sim.port, symbol, rows=5)
        assert (book.bids, book.asks) == books[symbol], symbol
    return books


def test_book_and_quotes_equal_the_simulators_own_through_an_ib_outage(
        spawn_child, start_handler, bus):
    port = free_port()
    start_handler("ib", port)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=300, depth_rows=10)
    bus.until(lambda events: all(sum(e.symbol == s for e in bus.of(BookDelta)) >= 100
                                 for s in SYMBOLS) and flowing(bus, 0, SYMBOLS)(events),
              what="100 book deltas, trades and quotes per symbol")
    for symbol, (bids, asks) in freeze_and_compare_books(bus, sim).items():
        last_quote = [q for q in bus.of(Quote) if q.symbol == symbol][-1]
        assert (last_quote.bid_price, last_quote.ask_price) == (max(bids), min(asks))
        assert (last_quote.bid_size, last_quote.ask_size) == (bids[max(bids)], asks[min(asks)])
    restored = bus.mark()
    sim.control("connectivity", online=1)
    bus.until(lambda _: ("subscribed", 1102) in bus.state_codes(restored), what="status 1102")
    bus.until(flowing(bus, restored, SYMBOLS, kinds=(Trade, Quote, BookDelta)),
              what="data flowing again after 1102")


def test_depth_that_does_not_fit_the_book_resubscribes_that_book(spawn_child, start_handler, bus):
    """With a TWS that acts on requests 50 ms late, as across a network, so that depth of the
    cancelled subscription is still on its way when the handler subscribes again."""
    port = free_port()
    start_handler("ib", port)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=300, depth_rows=10, latency=0.05)
    bus.until(flowing(bus, 0, SYMBOLS), what="trades, quotes and books")
    glitched = bus.mark()
    assert sim.control("bad-depth")["connections"] == 1
    bus.until(lambda _: any(beat.metric("bad_input", reason="depth_out_of_step") == len(SYMBOLS)
                            for beat in bus.of(Heartbeat, glitched)),
              what="one depth error counted per symbol")
    bus.until(flowing(bus, glitched, SYMBOLS, kinds=(BookSnapshot, BookDelta)),
              what="a new snapshot and deltas per symbol")
    freeze_and_compare_books(bus, sim)
    assert ("disconnected", 0) not in bus.state_codes(glitched)


# --- the connection ------------------------------------------------------------------------------

def test_survives_dropped_connections_and_a_tws_restart_on_the_same_port(
        spawn_child, start_handler, bus):
    port = free_port()
    start_handler("ib", port)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=100)
    bus.until(flowing(bus, 0, SYMBOLS), what="trades, quotes and books")
    dropped = bus.mark()
    assert sim.control("drop")["connections"] == 1
    subscribed_again(bus, dropped)
    restarted = bus.mark()
    kill_group(sim.proc)
    start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=100)
    subscribed_again(bus, restarted)


def test_a_frozen_tws_goes_stale_and_everything_is_resubscribed_once_it_thaws(
        spawn_child, start_handler, bus):
    port = free_port()
    start_handler("ib", port, keepalive=0.5, keepalive_timeout=0.5, timeout=1.0)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=100)
    bus.until(flowing(bus, 0, SYMBOLS), what="trades, quotes and books")
    frozen = bus.mark()
    with sim.frozen():
        stale = bus.until(lambda _: disconnects(bus, frozen), timeout=4.0,
                          what="a disconnect within keepalive + keepalive_timeout (1 s)")[0]
        assert stale.message == "stale: no answer to reqCurrentTime within 0.5 s"
        retried = bus.mark()
        attempt = bus.until(lambda _: disconnects(bus, retried), timeout=6.0,
                            what="a connection attempt to the frozen TWS to fail")[0]
        assert "TimeoutError" in attempt.message
    subscribed_again(bus, frozen)


def test_a_client_id_in_use_is_an_error_status_326_with_backoff(spawn_child, start_handler, bus):
    port = free_port()
    start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=50)
    holder = hold_client_id(port, 9)
    start_handler("ib", port, client_id=9, backoff_min=0.3, backoff_max=0.6)
    handler_on_the_bus(bus)
    bus.until(lambda _: bus.state_codes().count(("error", 326)) >= 3, what="three refusals")
    statuses = bus.of(Status)
    states = [s.state for s in statuses]
    first = states.index("error")  # the very first "connecting" may precede the bus connection
    assert states[first:first + 4] == ["error", "disconnected", "connecting", "error"]
    assert "client id is already in use" in statuses[first].message
    connecting = [s.ts_event for s in statuses if s.state == "connecting"]
    waits = [(later - earlier) / 1e9 for earlier, later in zip(connecting, connecting[1:])]
    assert all(wait >= 0.15 for wait in waits), waits  # at least half of backoff_min
    released = bus.mark()
    holder.close()
    bus.until(lambda _: ("subscribed", 0) in bus.state_codes(released), what="subscribed once free")
    bus.until(flowing(bus, released, SYMBOLS), what="data once connected")


def test_an_unknown_symbol_is_an_error_status_200_while_the_others_flow(
        spawn_child, start_handler, bus):
    port = free_port()
    start_handler("ib", port, symbols=["AAPL", "NOPE", "MSFT"])
    handler_on_the_bus(bus)
    start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=100)
    bus.until(flowing(bus, 0, SYMBOLS), what="trades, quotes and books for the known symbols")
    [unknown] = [s for s in bus.of(Status) if s.state == "error"]
    assert (unknown.symbol, unknown.code) == ("NOPE", 200)
    assert "No security definition" in unknown.message
    [subscribed] = [s for s in bus.of(Status) if s.state == "subscribed"]
    assert subscribed.message.startswith("2 of 3 symbols")
    assert not [e for e in bus.events if e.symbol == "NOPE" and not isinstance(e, Status)]


# --- settings ------------------------------------------------------------------------------------

def test_settings_are_checked_by_name():
    settings = read(IbSettings, {"symbols": ["AAPL", "BRK B"], "port": 4002, "backoff_min": 1})
    assert (settings.symbols, settings.port, settings.backoff_min) == (("AAPL", "BRK B"), 4002, 1.0)
    assert read(IbSettings, {"symbols": "AAPL, MSFT"}).symbols == ("AAPL", "MSFT")
    for bad, key in [({}, "symbols"), ({"symbols": ["AAPL", ""]}, "symbols"),
                     ({"symbols": [1]}, "symbols"), ({"symbols": ["A|B"]}, "symbols"),
                     ({"symbols": ["A"], "port": "7497"}, "port"),
                     ({"symbols": ["A"], "client_id": True}, "client_id"),
                     ({"symbols": ["A"], "smart_depth": 1}, "smart_depth"),
                     ({"symbols": ["A"], "clientid": 3}, "clientid"),
                     ({"symbols": ["A"], "backoff_min": 5, "backoff_max": 1}, "backoff_min"),
                     ({"symbols": ["A"], "keepalive": -1}, "keepalive"),
                     ({"symbols": ["A"], "keepalive_timeout": 0}, "keepalive_timeout")]:
        with pytest.raises(ValueError, match=key):
            read(IbSettings, bad)


# --- a hostile TWS ---------------------------------------------------------------------------------

def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_length_over_the_limit_drops_the_connection_and_memory_stays_small(
        spawn_child, start_handler, bus):
    port = free_port()
    handler = start_handler("ib", port, depth_rows=0, keepalive=0)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=50)
    bus.until(flowing(bus, 0, SYMBOLS, (Trade, Quote)), what="trades and quotes")
    before = peak_rss_mb(handler.pid)
    mark = bus.mark()
    sim.control("oversize", mb=64)  # a 2 GB length, then 64 MB of it
    back = bus.until(lambda _: bus.resubscribed(mark), what="a reconnect all the way to subscribed")
    bus.until(flowing(bus, back, SYMBOLS, (Trade, Quote)), what="fresh trades and quotes")
    dropped = disconnects(bus, mark)[0]
    assert "over the limit of 16777215" in dropped.message
    assert peak_rss_mb(handler.pid) - before < 32, "the handler buffered the oversized message"


def test_a_flood_of_undecodable_messages_is_logged_sparingly(
        spawn_child, start_handler, bus, tmp_path):
    port = free_port()
    log = tmp_path / "ib.log"
    start_handler("ib", port, log=log, depth_rows=0)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=50)
    bus.until(lambda _: "subscribed" in bus.states(), what="subscribed")
    sim.control("garbage", count=20000)

    def counted(events) -> bool:
        return any(isinstance(e, Heartbeat) and e.metric("bad_input", reason="malformed") >= 20000
                   for e in events)

    bus.until(counted, what="a heartbeat counting 20000 malformed messages")
    lines = [line for line in log.read_text().splitlines() if "could not decode" in line]
    assert 1 <= len(lines) <= 15, len(lines)  # the 1st, 2nd, 4th ... 16384th
    assert "disconnected" not in bus.states(bus.mark() - 1)
