"""The Kraken protocol never lies, whatever is lost or corrupted (hypothesis, pure): a venue
(tests/kraken_stream.Venue) changes its book at random, its updates reach the protocol, lost
or with a corrupted checksum at random, and a resync is answered, as Kraken would, by a
snapshot of the book then. Whatever the protocol publishes is applied to a reader's book.

Invariants, after every message:
- the reader's top 10 a side (what Kraken's checksum covers) is the venue's, whenever the
  protocol has published anything since it last said "resyncing";
- with nothing lost since the last snapshot, the reader's whole book is the venue's;
- a corrupted update is never published, and is counted as a mismatch.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from tickmesh.bus.events import BookDelta, BookSnapshot
from tickmesh.handlers.common.protocol import Resubscribe
from tickmesh.handlers.kraken.protocol import KrakenProtocol
from tests.books import apply_levels
from tests.kraken_stream import ZERO, Venue, update

pytestmark = pytest.mark.timeout(120)
STAMP = "1700000000.000000"
VOLUMES = ("1.00000000", "0.5", "2.25000000", "0.00010000", "3")
"""Volumes as a venue might write them: the checksum must see them as they are."""

change = st.tuples(st.sampled_from("ab"), st.integers(0, 24), st.sampled_from(VOLUMES + (ZERO,)))
step = st.tuples(st.lists(change, min_size=1, max_size=4),
                 st.sampled_from(["sent", "sent", "sent", "sent", "lost", "corrupt"]))


def venue(depth: int) -> Venue:
    pair = Venue("BTC-USD", "XBT/USD", 1, depth)
    for i in range(depth + 5):  # asks from 100.1 up, bids from 99.9 down, every other tick
        pair.set("a", 1001 + 2 * i, VOLUMES[i % len(VOLUMES)])
        pair.set("b", 999 - 2 * i, VOLUMES[(i + 2) % len(VOLUMES)])
    pair.held = {side: set(pair.top(side)) for side in "ab"}
    return pair


def snapshot(pair: Venue) -> bytes:
    pair.held = {side: set(pair.top(side)) for side in "ab"}
    return json.dumps([1, {"as": [[p, v, STAMP] for p, v in pair.strings("a")],
                           "bs": [[p, v, STAMP] for p, v in pair.strings("b")]},
                       f"book-{pair.depth}", pair.native]).encode()


def apply(pair: Venue, changes: list) -> dict:
    """The changes on the venue's book (prices on the side's half of the grid)."""
    done = {}
    for side, index, volume in changes:
        price = 1001 + index if side == "a" else 999 - index
        if volume == ZERO and len(pair.prices[side]) <= pair.depth:
            continue  # the venue keeps its book deeper than the depth
        pair.set(side, price, volume)
        done[side, price] = volume
    return done


@given(st.sampled_from([10, 25]), st.lists(step, max_size=60))
def test_what_the_protocol_publishes_never_contradicts_the_venue(depth, steps):
    counters: Counter = Counter()
    proto = KrakenProtocol(["BTC-USD"], depth=depth, counters=counters)
    proto.start()
    pair = venue(depth)
    reader: tuple[dict, dict] = ({}, {})
    lost_since_snapshot = False
    verified = True  # the reader's book was published since the last "resyncing"
    corrupted = 0

    def feed(frame: bytes) -> None:
        nonlocal reader, lost_since_snapshot, verified
        out = proto.receive(frame, 1)
        for event in out.events:
            if isinstance(event, BookSnapshot):
                reader = (dict(event.bids), dict(event.asks))
                lost_since_snapshot = False
            else:
                assert isinstance(event, BookDelta)
                apply_levels(reader, event.bids, event.asks)
            verified = True
        if any(change.state == "resyncing" for change in out.changes):
            verified = False
        for effect in out.effects:
            if isinstance(effect, Resubscribe):  # the client's backoff, then Kraken answers
                proto.resubscribe(effect.symbol)
                feed(snapshot(pair))

    feed(snapshot(pair))
    for changes, fate in steps:
        objects = update(pair, apply(pair, changes), STAMP)
        if not objects:
            continue
        if fate == "lost":
            lost_since_snapshot = True
            continue
        if fate == "corrupt":
            objects[-1]["c"] = str(int(objects[-1]["c"]) ^ 1)
            corrupted += 1
        mismatches = counters["checksum_mismatches"]
        feed(json.dumps([1, *objects, f"book-{depth}", pair.native]).encode())
        if fate == "corrupt":
            assert counters["checksum_mismatches"] == mismatches + 1  # and its resync's
            # snapshot is the venue's book: the invariants below
        truth = pair.book()
        if verified:
            for mine, theirs, best in zip(reader, truth, (max, min)):
                top = sorted(theirs, reverse=best is max)[:10]
                assert sorted(mine, reverse=best is max)[:10] == top
                assert all(mine[p] == theirs[p] for p in top)
            if not lost_since_snapshot:
                assert reader == truth
    assert counters["checksum_mismatches"] >= corrupted
