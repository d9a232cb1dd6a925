"""handlers.ib.depth, pure: position-indexed operations in, price-level snapshots and deltas out,
checked against a naive reference book and against the simulator's own market."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.handlers.ib.depth import ASK, BID, DELETE, INSERT, UPDATE, DepthBook, DepthError
from tickmesh.handlers.ib.sim.market import Market
from tickmesh.handlers.ib.sim.session import DepthStream
from tickmesh.handlers.ib.sim.wire import FrameReader, split_fields


def aggregate(rows: list[tuple[float, float]]) -> dict[float, float]:
    """The reference: total size per price of a list of rows."""
    levels: dict[float, float] = {}
    for price, size in rows:
        levels[price] = levels.get(price, 0.0) + size
    return levels


class Consumer:
    """What a bus consumer does with BookSnapshot / BookDelta."""

    def __init__(self) -> None:
        self.sides: dict[int, dict[float, float]] = {BID: {}, ASK: {}}

    def snapshot(self, bids, asks) -> None:
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        self.sides = {BID: dict(bids), ASK: dict(asks)}

    def delta(self, bids, asks) -> None:
        for side, levels in ((BID, bids), (ASK, asks)):
            for price, size in levels:
                if size == 0.0:
                    self.sides[side].pop(price, None)
                else:
                    self.sides[side][price] = size


@settings(max_examples=50)
@given(data=st.data())
def test_depth_book_matches_a_reference_book(data):
    """Thousands of random position operations (shared prices included), read at random."""
    reference: dict[int, list[tuple[float, float]]] = {BID: [], ASK: []}
    book, consumer = DepthBook(), Consumer()
    prices = st.sampled_from([99.0, 99.5, 100.0, 100.5, 101.0])
    sizes = st.sampled_from([1.0, 2.0, 5.0, 100.0])
    for _ in range(data.draw(st.integers(1, 200))):
        side = data.draw(st.sampled_from([BID, ASK]))
        rows = reference[side]
        operation = INSERT if not rows else data.draw(st.sampled_from([INSERT, UPDATE, DELETE]))
        last = len(rows) if operation == INSERT else len(rows) - 1
        position = data.draw(st.integers(0, last))
        price, size = data.draw(prices), data.draw(sizes)
        if operation == INSERT:
            rows.insert(position, (price, size))
        elif operation == UPDATE:
            rows[position] = (price, size)
        else:
            del rows[position]
        book.apply(side, position, operation, price, size)
        read = data.draw(st.sampled_from(["none", "none", "delta", "snapshot"]))
        if read == "delta":
            consumer.delta(*book.delta())
        elif read == "snapshot":
            consumer.snapshot(*book.snapshot())
    consumer.delta(*book.delta())
    assert consumer.sides == {side: aggregate(rows) for side, rows in reference.items()}


@pytest.mark.parametrize("position, operation",
                         [(1, INSERT), (0, UPDATE), (0, DELETE), (-1, INSERT)])
def test_operations_off_the_end_are_errors(position, operation):
    book = DepthBook()
    with pytest.raises(DepthError):
        book.apply(BID, position, operation, 100.0, 1.0)
    assert book.snapshot() == ([], [])


def test_unknown_codes_are_errors_and_change_nothing():
    book = DepthBook()
    book.apply(ASK, 0, INSERT, 101.0, 5.0)
    for side, operation in ((ASK, 7), (2, INSERT)):
        with pytest.raises(DepthError):
            book.apply(side, 0, operation, 102.0, 1.0)
    assert book.snapshot() == ([], [(101.0, 5.0)])


def test_delta_reports_only_changed_levels_and_removals():
    book = DepthBook()
    for position, price in enumerate([100.0, 99.0, 98.0]):
        book.apply(BID, position, INSERT, price, 10.0)
    book.snapshot()
    book.apply(BID, 1, DELETE, 0.0, 0.0)               # 99 gone, 98 moves up: no change there
    book.apply(BID, 0, UPDATE, 100.5, 3.0)             # the row at 0 moves to a new price
    assert book.delta() == ([(100.5, 3.0), (100.0, 0.0), (99.0, 0.0)], [])
    assert book.delta() == ([], [])


def test_the_simulators_market_rebuilds_exactly():
    """Thousands of market steps, seen whole and through a 3-row view as TWS would send them."""
    market = Market("AAPL", rows=10, rng=random.Random(7))
    full, view = DepthBook(), DepthBook()
    narrow = DepthStream(req_id=1, symbol="AAPL", rows=3, smart=False)
    for side in (BID, ASK):
        for position, (price, size) in enumerate(market.sides[side].rows):
            full.apply(side, position, INSERT, price, size)
    apply_messages(view, narrow.initial(market, now=0))
    operations = 0
    for _ in range(5000):
        step = market.step()
        for op in step.ops:
            full.apply(op.side, op.position, op.operation, op.price, op.size)
        operations += len(step.ops)
        apply_messages(view, narrow.update(market, step, now=0))
    assert operations > 5000
    for side in (BID, ASK):
        assert full.sides[side].rows == market.sides[side].rows
        assert view.sides[side].rows == market.sides[side].rows[:3]


def apply_messages(book: DepthBook, messages: list[bytes]) -> None:
    """updateMktDepth messages (12, version, reqId, position, operation, side, price, size)."""
    reader = FrameReader()
    for message in messages:
        [payload] = reader.feed(message)
        _, _, _, position, operation, side, price, size = split_fields(payload)
        book.apply(int(side), int(position), int(operation), float(price), float(size))
