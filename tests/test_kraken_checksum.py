"""Kraken's book checksum against the worked example of its documentation ("Book checksum
(WebSocket v1)": a book of ten asks from 0.05005 and ten bids from 0.05000, every volume
0.00000500, whose checksum is 974947235), and the StringBook it is computed over."""

from __future__ import annotations

import random

import pytest

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
