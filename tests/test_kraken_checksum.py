"""Kraken's book checksum against the worked example of its documentation ("Book checksum
(WebSocket v1)": a book of ten asks from 0.05005 and ten bids from 0.05000, every volume
0.00000500, whose checksum is 974947235), and the StringBook it is computed over: its
checksum, kept up to date level by level, always the one computed from scratch (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings, strategies as st

from tickmesh.handlers.kraken.checksum import StringBook, checksum, checksum_string

pytestmark = pytest.mark.timeout(10)

DOC_ASKS = [(p, "0.00000500") for p in ("0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
                                        "0.05030", "0.05035", "0.05040", "0.05045", "0.05050")]
DOC_BIDS = [(p, "0.00000500") for p in ("0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
                                        "0.04970", "0.04965", "0.04960", "0.04955", "0.04950")]
DOC_STRING = ("5005500" "5010500" "5015500" "5020500" "5025500" "5030500" "5035500" "5040500"
              "5045500" "5050500" "5000500" "4995500" "4990500" "4980500" "4975500" "4970500"
              "4965500" "4960500" "4955500" "4950500")
DOC_CHECKSUM = 974947235


def test_the_documented_example_gives_the_documented_string_and_checksum():
    assert checksum_string(DOC_ASKS, DOC_BIDS) == DOC_STRING
    assert checksum(DOC_ASKS, DOC_BIDS) == DOC_CHECKSUM


def test_each_value_loses_its_point_and_its_leading_zeros():
    assert checksum_string([("0.05005", "0.00000500")], []) == "5005" + "500"
    assert checksum_string([], [("45285.2", "0.00100000")]) == "452852" + "100000"


def test_only_the_top_ten_of_each_side_count():
    deeper = DOC_ASKS + [("0.06000", "1.00000000")], DOC_BIDS + [("0.04000", "1.00000000")]
    assert checksum(*deeper) == DOC_CHECKSUM


def test_floats_printed_back_break_it():
    """Why the levels' strings are kept as received."""
    asks = [(str(float(p)), str(float(v))) for p, v in DOC_ASKS]
    assert checksum(asks, DOC_BIDS) != DOC_CHECKSUM


def test_a_string_book_filled_in_any_order_gives_the_documented_checksum():
    levels = [("a", p, v) for p, v in DOC_ASKS] + [("b", p, v) for p, v in DOC_BIDS]
    random.Random(7).shuffle(levels)
    book = StringBook(depth=1000)
    for side, p, v in levels:
        (book.asks if side == "a" else book.bids).set(float(p), (p, v))
    assert book.checksum() == DOC_CHECKSUM
    assert not book.crossed()


def test_truncating_to_the_depth_drops_the_worst_levels():
    book = StringBook(depth=10)
    for p, v in DOC_ASKS + [("0.06000", "1.0")]:
        book.asks.set(float(p), (p, v))
    for p, v in DOC_BIDS + [("0.04000", "1.0")]:
        book.bids.set(float(p), (p, v))
    assert book.asks.truncate(10) == [0.06] and book.bids.truncate(10) == [0.04]
    assert book.checksum() == DOC_CHECKSUM


PRICES = [f"0.0{n:04d}" for n in range(4990, 5014)]  # both sides on one grid: crossings too
VOLUMES = ("0.00000500", "1.0", "12.25000000", "0.1", "3")
change = st.tuples(st.sampled_from("ab"), st.sampled_from(PRICES),
                   st.sampled_from(VOLUMES + (None,)))
replacement = st.tuples(st.sampled_from("ab"), st.dictionaries(
    st.sampled_from(PRICES), st.sampled_from(VOLUMES + (None,)), max_size=14))
step = st.one_of(change, change, change, change, st.sampled_from([1, 3, 10, 11, 25]),
                 replacement)
"""A level set or removed, or (one time in six each) a truncation or a side replaced."""


@settings(max_examples=300)
@example(11, [("a", PRICES[0], None), ("b", PRICES[-1], None)])  # the 11th best moves up
@example(12, [("a", PRICES[9], "3"), ("b", PRICES[-10], "3")])  # the 10th best changes
@given(st.integers(0, 14), st.lists(step, max_size=100))
def test_the_kept_checksum_is_always_the_one_computed_from_scratch(filled, steps):
    """From `filled` levels a side (around the 10 the checksum takes), levels set and removed,
    the sides truncated and replaced at random."""
    book = StringBook(depth=1000)
    truth: tuple[dict, dict] = ({}, {})  # asks, bids: price -> (price, volume)
    first = [("a", price, "1.0") for price in PRICES[:filled]]
    for item in first + [("b", price, "2.0") for price in PRICES[-filled:] if filled] + steps:
        if isinstance(item, int):
            dropped = book.asks.truncate(item), book.bids.truncate(item)
            for levels, gone, best_first in zip(truth, dropped, (sorted, _highest_first)):
                assert gone == best_first(levels)[item:]
                for price in gone:
                    del levels[price]
        elif len(item) == 2:
            side, replaced = item
            levels = {float(price): None if volume is None else (price, volume)
                      for price, volume in replaced.items()}
            (book.asks if side == "a" else book.bids).replace(levels)
            truth[side == "b"].clear()
            truth[side == "b"].update((p, level) for p, level in levels.items() if level)
        else:
            side, price, volume = item
            level = None if volume is None else (price, volume)
            (book.asks if side == "a" else book.bids).set(float(price), level)
            levels = truth[side == "b"]
            if level is None:
                levels.pop(float(price), None)
            else:
                levels[float(price)] = level
        asks = [truth[0][p] for p in sorted(truth[0])]
        bids = [truth[1][p] for p in _highest_first(truth[1])]
        assert book.asks.top() == asks and book.bids.top() == bids
        assert book.asks.top(10) == asks[:10] and book.bids.top(3) == bids[:3]
        assert book.checksum() == checksum(asks, bids)
        assert book.asks.best() == (float(asks[0][0]) if asks else None)
        assert book.bids.best() == (float(bids[0][0]) if bids else None)


def _highest_first(levels: dict) -> list:
    return sorted(levels, reverse=True)
