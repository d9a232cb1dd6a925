"""The order-book builder on the real IB chain: the fake TWS, the IB handler, the forwarder and
the builder, each a process. IB depth goes through the same builder as any provider's: its
books equal the simulator's own, go stale with IB's connectivity and come back live through a
resync the IB handler answers."""

from __future__ import annotations

from tickmesh.bus.events import Bbo, BookDelta, BookStatus
from tickmesh.consumers.books.snapshots import request_book
from tests.conftest import free_port
from tests.ib_sim import start_ib_sim
from tests.test_books_builder import start_builder
from tests.test_ib_handler import HANDLER_SETTINGS as IB_HANDLER
from tests.test_ib_handler import SYMBOLS, handler_on_the_bus, simulators_book

ROWS = 5
HANDLER_SETTINGS = {**IB_HANDLER, "depth_rows": ROWS}
"""The IB handler as test_ib_handler starts it, with ROWS rows of depth."""
BUS_PATTERNS = [f"{kind}.ib" for kind in ("book_delta", "book_status", "bbo", "status")]


def books(endpoint: str) -> dict[str, dict]:
    return {symbol: request_book(endpoint, "ib", symbol, 0, timeout=5) for symbol in SYMBOLS}


def states(endpoint: str) -> set[str]:
    return {book.get("state", "unknown") for book in books(endpoint).values()}


def test_the_builders_ib_books_equal_the_simulators_and_resync_after_an_outage(
        spawn_child, start_handler, forwarder, bus, run_dir):
    endpoint = f"ipc://{run_dir}/books"
    start_builder(spawn_child, forwarder, endpoint, providers=["ib"], resync_timeout=0.5,
                  resync_max=2.0)
    port = free_port()
    start_handler("ib", port)
    handler_on_the_bus(bus)
    sim = start_ib_sim(spawn_child, port, symbols=SYMBOLS, rate=300, depth_rows=10)
    bus.until(lambda _: all(sum(d.symbol == s for d in bus.of(BookDelta)) >= 100
                            for s in SYMBOLS) and states(endpoint) == {"live"},
              what="100 deltas per symbol, and every book live")
    sim.control("connectivity", online=0)
    bus.until(lambda _: ("disconnected", 1100) in bus.state_codes(), what="status 1100")
    bus.until(lambda _: states(endpoint) == {"stale"}, what="every book stale")
    for symbol, book in books(endpoint).items():
        bids, asks = simulators_book(sim.port, symbol, rows=ROWS)
        assert book["bids"] == [[price, bids[price]] for price in sorted(bids, reverse=True)]
        assert book["asks"] == [[price, asks[price]] for price in sorted(asks)]
        last_bbo = [b for b in bus.of(Bbo) if b.symbol == symbol][-1]
        assert (last_bbo.bid_price, last_bbo.ask_price) == (max(bids), min(asks))
        assert book["message"] == "the provider is disconnected"
    restored = bus.mark()
    sim.control("connectivity", online=1)  # 1102: data kept, so no snapshot comes by itself
    bus.until(lambda _: states(endpoint) == {"live"}, what="every book live again")
    resynced = {s.symbol for s in bus.of(BookStatus, restored) if s.state == "live"}
    assert resynced == set(SYMBOLS)
