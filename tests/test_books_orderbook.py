"""The order book alone (consumers.books.orderbook): snapshots, deltas, tops, crossed and locked."""

from hypothesis import given
from hypothesis import strategies as st

from tickmesh.consumers.books.orderbook import OrderBook
from tests.books import apply_levels


def book(bids, asks) -> OrderBook:
    b = OrderBook()
    b.apply_snapshot(bids, asks)
    return b


def test_snapshot_replaces_the_book_and_leaves_out_empty_levels():
    b = book([(99.0, 1.0), (100.0, 2.0)], [(101.0, 3.0)])
    b.apply_snapshot([(98.0, 5.0), (97.0, 0.0)], [(102.0, 1.0), (103.0, 2.0)])
    assert b.top() == ([(98.0, 5.0)], [(102.0, 1.0), (103.0, 2.0)])


def test_delta_sets_sizes_and_size_zero_removes_a_level():
    b = book([(100.0, 2.0), (99.0, 1.0)], [(101.0, 3.0), (102.0, 4.0)])
    b.apply_delta([(100.0, 0.0), (98.5, 7.0), (99.0, 9.0)], [(101.0, 0.0), (100.5, 1.0)])
    assert b.best_bid() == (99.0, 9.0) and b.best_ask() == (100.5, 1.0)
    assert b.top() == ([(99.0, 9.0), (98.5, 7.0)], [(100.5, 1.0), (102.0, 4.0)])


def test_removing_a_level_that_is_not_there_changes_nothing():
    b = book([(100.0, 2.0)], [(101.0, 3.0)])
    b.apply_delta([(42.0, 0.0)], [(43.0, 0.0)])
    assert b.top() == ([(100.0, 2.0)], [(101.0, 3.0)])


def test_top_n_is_best_first_on_each_side():
    b = book([(float(p), 1.0) for p in range(90, 100)], [(float(p), 1.0) for p in range(100, 110)])
    bids, asks = b.top(3)
    assert [p for p, _ in bids] == [99.0, 98.0, 97.0]
    assert [p for p, _ in asks] == [100.0, 101.0, 102.0]
    assert b.top(0) == ([], [])
    assert len(b.top(50)[0]) == 10


def test_an_empty_book():
    b = OrderBook()
    assert b.best_bid() is None and b.best_ask() is None
    assert b.top(5) == ([], []) and b.cross() == ""


def test_crossed_and_locked():
    assert book([(100.0, 1.0)], [(101.0, 1.0)]).cross() == ""
    assert book([(101.0, 1.0)], [(101.0, 1.0)]).cross() == "locked"
    assert book([(102.0, 1.0)], [(101.0, 1.0)]).cross() == "crossed"
    assert book([(102.0, 1.0)], []).cross() == ""  # one side only: nothing to cross


levels = st.lists(st.tuples(st.integers(1, 40).map(float), st.sampled_from([0.0, 1.0, 2.5])),
                  max_size=8)


@given(st.lists(st.tuples(levels, levels), max_size=40))
def test_the_book_is_the_dict_of_what_was_applied(deltas):
    b, bids, asks = OrderBook(), {}, {}
    for bid_levels, ask_levels in deltas:
        b.apply_delta(bid_levels, ask_levels)
        apply_levels((bids, asks), bid_levels, ask_levels)
        assert b.top() == (sorted(bids.items(), reverse=True), sorted(asks.items()))
        assert b.best_bid() == (max(bids.items()) if bids else None)
