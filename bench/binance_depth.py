"""The Binance depth recording the book benchmark replays: made once from a seed, then cached in
bench/.data/ (the same files for every run and for both sides).

For `symbols` symbols (AAA-USDT, AAB-USDT, ...), each a book of about LEVELS price levels a
side on a 0.01 grid, PRE events that predate the REST snapshot (a client must drop them), then
`events // symbols` depthUpdates to apply, each changing 5 to 20 levels, mostly near the top
(depth ~ exponential, mean ~7 levels): size changes (60%), levels emptied (20%, some of them
the best), new levels (20%, some inside the spread); never crossed. The last event of every
symbol changes its top of book, so a bbo marks the moment the last one was applied.
Files, in the simulator's replay formats (handlers.binance.sim.replay):
- frames.jsonl: combined-stream frames, the symbols' events interleaved (event i of every
  symbol, then event i + 1);
- snapshots.jsonl: one REST depth answer per symbol, as of its PRE-th event;
- truth.json: {"updates": the events after the snapshots, "symbols": [...], "books": {symbol:
  [bids, asks]} (the final books, best first, as floats), "bbo": {symbol: [bid, bid size, ask,
  ask size]}, "last_ids": {symbol: the u of its last event}}.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
VERSION = 4
LEVELS = 100
PRE = 3
CHANGES = (5, 20)
E0_MS = 1_700_000_000_000


def recording(symbols: int, events: int, seed: int = 1) -> Path:
    """The directory of the recording, made first if it is not there yet."""
    path = DATA_DIR / f"binance-depth-v{VERSION}-s{symbols}-e{events}-seed{seed}"
    if not (path / "truth.json").exists():
        print(f"making the Binance depth recording (once): {path}", flush=True)
        _make(path, symbols, events // symbols, seed)
    return path


def truth(path: Path) -> dict:
    return json.loads((path / "truth.json").read_text())


def symbol_names(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    bases = (a + b + c for a in letters for b in letters for c in letters)
    return [f"{next(bases)}-USDT" for _ in range(count)]


class _Book:
    """One symbol's book in integer ticks (cents) and lots (1e-8), changed at random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        mid = rng.randint(2_000, 500_000)
        self.bids = {mid - 1 - i * 2 - rng.randint(0, 1): self._size() for i in range(LEVELS)}
        self.asks = {mid + 1 + i * 2 + rng.randint(0, 1): self._size() for i in range(LEVELS)}

    def _size(self) -> int:
        return self.rng.randint(1_000_000, 50_000_000_000)

    def event(self, force_top: bool) -> tuple[dict[int, int], dict[int, int]]:
        """One depthUpdate's changes (tick -> new size, 0 removes), applied to the book."""
        rng = self.rng
        top = self.top()
        changes: tuple[dict[int, int], dict[int, int]] = ({}, {})
        wanted = rng.randint(*CHANGES)
        while len(changes[0]) + len(changes[1]) < wanted:
            is_bid = rng.random() < 0.5
            side, changed = (self.bids, changes[0]) if is_bid else (self.asks, changes[1])
            prices = sorted(side, reverse=is_bid)
            price = prices[min(int(rng.expovariate(1 / 7)), len(prices) - 1)]
            action = rng.random()
            if action < 0.2 and len(side) >= LEVELS:  # a level emptied
                del side[price]
                changed[price] = 0
                continue
            if action < 0.4 and len(side) <= LEVELS:  # a new level, never crossing
                best_bid, best_ask = max(self.bids), min(self.asks)
                price = (rng.randint(best_bid - 20, best_ask - 1) if is_bid
                         else rng.randint(best_bid + 1, best_ask + 20))
                if price in side:
                    continue
            side[price] = changed[price] = self._size()  # a new size
        if force_top and self.top() == top:
            best = max(self.bids)
            self.bids[best] = changes[0][best] = self._size()
        return changes

    def top(self) -> tuple:
        best_bid, best_ask = max(self.bids), min(self.asks)
        return best_bid, self.bids[best_bid], best_ask, self.asks[best_ask]

    def sides(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


def _price(ticks: int) -> str:
    return f"{ticks // 100}.{ticks % 100:02d}000000"


def _size(lots: int) -> str:
    return f"{lots // 100_000_000}.{lots % 100_000_000:08d}"


def _levels(levels) -> list[list[str]]:
    return [[_price(p), _size(q)] for p, q in levels]


def _make(path: Path, symbols: int, per_symbol: int, seed: int) -> None:
    names = symbol_names(symbols)
    natives = [name.replace("-", "") for name in names]
    rng = random.Random(seed)
    books = [_Book(random.Random(rng.random())) for _ in names]
    ids = [rng.randint(1_000_000_000, 5_000_000_000) for _ in names]
    snapshots, frames = [], []
    for i in range(PRE + per_symbol):
        for s, (native, book) in enumerate(zip(natives, books)):
            bids, asks = book.event(force_top=i == PRE + per_symbol - 1)
            first, ids[s] = ids[s] + 1, ids[s] + rng.randint(1, 5)
            data = {"e": "depthUpdate", "E": E0_MS + i * 100, "s": native, "U": first,
                    "u": ids[s], "b": _levels(bids.items()), "a": _levels(asks.items())}
            frames.append(json.dumps({"stream": f"{native.lower()}@depth@100ms", "data": data},
                                     separators=(",", ":")))
            if i == PRE - 1:
                bid_levels, ask_levels = book.sides()
                snapshots.append(json.dumps({"symbol": native, "response": {
                    "lastUpdateId": ids[s], "bids": _levels(bid_levels),
                    "asks": _levels(ask_levels)}}, separators=(",", ":")))
    final = {}
    for name, book in zip(names, books):
        final[name] = [[(p / 100, q / 1e8) for p, q in side] for side in book.sides()]
    document = {"updates": symbols * per_symbol, "symbols": names, "books": final,
                "bbo": {name: [*sides[0][0], *sides[1][0]] for name, sides in final.items()},
                "last_ids": dict(zip(names, ids))}
    path.mkdir(parents=True, exist_ok=True)
    (path / "frames.jsonl").write_text("\n".join(frames) + "\n")
    (path / "snapshots.jsonl").write_text("\n".join(snapshots) + "\n")
    (path / "truth.json").write_text(json.dumps(document))
