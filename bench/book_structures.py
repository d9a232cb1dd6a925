"""Which data structure holds one side of an order book best: measured on a replay of a busy
symbol's L2 stream, as the order-book builder (consumers.books) sees it.

    .venv/bin/python -m bench.book_structures [--deltas 100000] [--levels 100] [--runs 3]

The stream (made once, from a seed): a book of `levels` price levels a side on a 0.01 grid;
`deltas` book deltas of 1 to 3 levels each, touching mostly the top (the level's depth is
geometric: 30% the best level, 21% the next, ...): size changes (80%), a level emptied (10%:
often the best, so the top moves), a new level (10%: often inside the spread), the sides kept
near `levels` by adding or dropping levels at the far end. After each delta the best bid and
ask are read (the builder publishes the bbo when it changes); every 100 deltas the top 10 of
each side (the depth events and snapshot requests).

Candidates, each one side with `set(price, size)` (size 0 removes), `best()` and `top(n)`:
- sorted_dict: sortedcontainers.SortedDict (a pure-Python B-tree-like sorted list of lists)
- lazy_sorted: a dict, and its keys sorted again only when a level appeared or went away since
  the last read (a size change, the common case, leaves the order alone)
- bisect_list: a dict and a sorted key list kept in order with bisect at every new or emptied
  level
- heap: a dict and a heap of prices with lazy deletion (stale prices popped when on top); top N
  by heapq.nsmallest over the dict
- rbtree: bintrees' red-black tree (its C trees do not build on Python 3.11: this is its pure
  Python one, shown only as the C-extension candidate that did not install)
Prints µs per delta (apply + top-of-book read + the amortized top-10 reads), the best of
`runs` runs, and checks that every candidate reads the same tops as a reference.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import random
import time
from typing import Callable, Protocol

Level = tuple[float, float]
Delta = tuple[list[Level], list[Level]]
TOP_N = 10
TOP_EVERY = 100
TICK = 0.01


class Side(Protocol):
    def set(self, price: float, size: float) -> None: ...
    def best(self) -> Level | None: ...
    def top(self, n: int) -> list[Level]: ...


# --- candidates -----------------------------------------------------------------------------

class SortedDictSide:
    def __init__(self, descending: bool) -> None:
        from sortedcontainers import SortedDict

        self.levels = SortedDict()
        self.descending = descending

    def set(self, price: float, size: float) -> None:
        if size:
            self.levels[price] = size
        else:
            self.levels.pop(price, None)

    def best(self) -> Level | None:
        if not self.levels:
            return None
        return self.levels.peekitem(-1 if self.descending else 0)

    def top(self, n: int) -> list[Level]:
        keys = self.levels.keys()
        prices = keys[:-n - 1:-1] if self.descending else keys[:n]
        return [(price, self.levels[price]) for price in prices]


class LazySortedSide:
    def __init__(self, descending: bool) -> None:
        self.levels: dict[float, float] = {}
        self.descending = descending
        self._order: list[float] | None = []

    def set(self, price: float, size: float) -> None:
        if size:
            if price not in self.levels:
                self._order = None
            self.levels[price] = size
        elif self.levels.pop(price, None) is not None:
            self._order = None

    def _prices(self) -> list[float]:
        if self._order is None:
            self._order = sorted(self.levels, reverse=self.descending)
        return self._order

    def best(self) -> Level | None:
        prices = self._prices()
        return (prices[0], self.levels[prices[0]]) if prices else None

    def top(self, n: int) -> list[Level]:
        return [(price, self.levels[price]) for price in self._prices()[:n]]


class BisectListSide:
    def __init__(self, descending: bool) -> None:
        self.levels: dict[float, float] = {}
        self.prices: list[float] = []  # ascending
        self.descending = descending

    def set(self, price: float, size: float) -> None:
        if size:
            if price not in self.levels:
                bisect.insort(self.prices, price)
            self.levels[price] = size
        elif self.levels.pop(price, None) is not None:
            del self.prices[bisect.bisect_left(self.prices, price)]

    def best(self) -> Level | None:
        if not self.prices:
            return None
        price = self.prices[-1] if self.descending else self.prices[0]
        return price, self.levels[price]

    def top(self, n: int) -> list[Level]:
        prices = self.prices[:-n - 1:-1] if self.descending else self.prices[:n]
        return [(price, self.levels[price]) for price in prices]


class HeapSide:
    def __init__(self, descending: bool) -> None:
        self.levels: dict[float, float] = {}
        self.heap: list[float] = []  # keys: -price for bids; may hold stale ones
        self.sign = -1.0 if descending else 1.0

    def set(self, price: float, size: float) -> None:
        if size:
            if price not in self.levels:
                heapq.heappush(self.heap, self.sign * price)
            self.levels[price] = size
        else:
            self.levels.pop(price, None)
            if len(self.heap) > 2 * len(self.levels) + 16:
                self.heap = [self.sign * p for p in self.levels]
                heapq.heapify(self.heap)

    def best(self) -> Level | None:
        heap, levels, sign = self.heap, self.levels, self.sign
        while heap and sign * heap[0] not in levels:
            heapq.heappop(heap)
        if not heap:
            return None
        price = sign * heap[0]
        return price, levels[price]

    def top(self, n: int) -> list[Level]:
        if self.sign < 0:
            prices = heapq.nlargest(n, self.levels)
        else:
            prices = heapq.nsmallest(n, self.levels)
        return [(price, self.levels[price]) for price in prices]


class RbTreeSide:
    def __init__(self, descending: bool) -> None:
        import bintrees

        self.levels = bintrees.RBTree()
        self.descending = descending

    def set(self, price: float, size: float) -> None:
        if size:
            self.levels[price] = size
        else:
            self.levels.discard(price)

    def best(self) -> Level | None:
        if not self.levels:
            return None
        return self.levels.max_item() if self.descending else self.levels.min_item()

    def top(self, n: int) -> list[Level]:
        return self.levels.nlargest(n) if self.descending else self.levels.nsmallest(n)


class KeptSide:
    """consumers.books.orderbook's own side (the one chosen), through its public book."""

    def __init__(self, descending: bool) -> None:
        from tickmesh.consumers.books.orderbook import BookSide

        self.side = BookSide(descending)
        self.set = self.side.set
        self.best = self.side.best
        self.top = self.side.top


CANDIDATES: dict[str, Callable[[bool], Side]] = {
    "sorted_dict": SortedDictSide, "lazy_sorted": LazySortedSide,
    "bisect_list": BisectListSide, "heap": HeapSide, "rbtree (pure Python)": RbTreeSide,
    "consumers.books.orderbook (kept)": KeptSide,
}


# --- the stream -----------------------------------------------------------------------------

def _depth(rng: random.Random, size: int) -> int:
    """A level's index from the top, geometric (p = 0.3), within `size`."""
    k = 0
    while rng.random() > 0.3 and k < size - 1:
        k += 1
    return k


def make_stream(deltas: int, levels: int, seed: int = 7) -> tuple[list[Level], list[Level],
                                                                    list[Delta]]:
    """(snapshot bids, snapshot asks, deltas); prices in integer ticks while made."""
    rng = random.Random(seed)
    bids = {10_000 - i: float(rng.randint(1, 50) * 100) for i in range(levels)}
    asks = {10_001 + i: float(rng.randint(1, 50) * 100) for i in range(levels)}
    snapshot = ([(p * TICK, s) for p, s in bids.items()], [(p * TICK, s) for p, s in asks.items()])
    stream = []
    for _ in range(deltas):
        changes: tuple[dict[int, float], dict[int, float]] = ({}, {})
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            is_bid = rng.random() < 0.5
            _change(rng, bids if is_bid else asks, asks if is_bid else bids, is_bid,
                    changes[0 if is_bid else 1], levels)
        stream.append(([(p * TICK, s) for p, s in changes[0].items()],
                       [(p * TICK, s) for p, s in changes[1].items()]))
    return snapshot[0], snapshot[1], stream


def _change(rng: random.Random, side: dict[int, float], other: dict[int, float], is_bid: bool,
            out: dict[int, float], levels: int) -> None:
    ordered = sorted(side, reverse=is_bid)
    roll = rng.random()
    if roll < 0.8 or len(side) < 3:
        price = ordered[_depth(rng, len(ordered))]
        side[price] = out[price] = float(rng.randint(1, 50) * 100)
    elif roll < 0.9:
        price = ordered[_depth(rng, len(ordered))]
        del side[price]
        out[price] = 0.0
    else:
        best_other = max(other) if not is_bid else min(other)
        price = ordered[0] + (1 if is_bid else -1) * rng.choice((1, -_depth(rng, len(ordered))))
        if (is_bid and price >= best_other) or (not is_bid and price <= best_other):
            price = ordered[0]
        side[price] = out[price] = float(rng.randint(1, 50) * 100)
    while len(side) > levels + 10:
        far = min(side) if is_bid else max(side)
        del side[far]
        out[far] = 0.0
    if len(side) < levels - 10:
        far = (min(side) - 1) if is_bid else (max(side) + 1)
        side[far] = out[far] = 100.0


# --- the replay -----------------------------------------------------------------------------

def replay(make: Callable[[bool], Side], snapshot_bids: list[Level], snapshot_asks: list[Level],
           stream: list[Delta]) -> tuple[float, list]:
    """Seconds for the whole stream, and what was read (for the cross-check)."""
    bids, asks = make(True), make(False)
    for price, size in snapshot_bids:
        bids.set(price, size)
    for price, size in snapshot_asks:
        asks.set(price, size)
    reads = []
    start = time.perf_counter()
    for i, (bid_changes, ask_changes) in enumerate(stream):
        for price, size in bid_changes:
            bids.set(price, size)
        for price, size in ask_changes:
            asks.set(price, size)
        top = (bids.best(), asks.best())
        if i % TOP_EVERY == 0:
            top = (top, bids.top(TOP_N), asks.top(TOP_N))
        if i % 1000 == 0:
            reads.append(top)
    return time.perf_counter() - start, reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=100_000)
    parser.add_argument("--levels", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bids, asks, stream = make_stream(args.deltas, args.levels)
    levels = sum(len(b) + len(a) for b, a in stream)
    print(f"{args.deltas} deltas ({levels} level changes), {args.levels} levels a side, "
          f"top {TOP_N} every {TOP_EVERY}; best of {args.runs} runs")
    reference = None
    for name, make in CANDIDATES.items():
        try:
            times, reads = zip(*(replay(make, bids, asks, stream) for _ in range(args.runs)))
        except ImportError as exc:
            print(f"{name:28} not installed ({exc})")
            continue
        reference = reference or reads[0]
        same = "same reads" if reads[0] == reference else "DIFFERENT READS"
        print(f"{name:28} {min(times) / args.deltas * 1e6:6.2f} µs per delta   {same}")


if __name__ == "__main__":
    main()
