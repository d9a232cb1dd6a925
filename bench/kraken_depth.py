"""The Kraken book recording the Kraken book benchmark replays (bench/kraken_books.py): made once
from a seed, then cached in bench/.data/ (the same file for every run and for both sides).

The book itself is tests/kraken_stream.py's, made independently of our Kraken handler and
simulator: its `Venue` (a pair's book as the venue holds it, deeper than the subscribed depth,
so a deletion uncovers a level, republished "r") and its `update` (the payload that takes a
depth-1000 subscriber from its top to the new one, with the checksum `c` by that module's own
reading of Kraken's CRC32). What is this module's: `pairs` pairs (AAA-USD, ..., Kraken's
AAA/USD, ...), each a depth-1000 snapshot, then `updates // pairs` updates each, interleaved
(update i of every pair, then update i + 1). Each update changes ONE side (1 to 3 levels,
mostly near the top, a tenth of them around the 1000th level; sizes changed, levels deleted,
new ones), so its message has one payload object, `c` in it: cryptofeed 2.4.1 checks `c` only
in a message's first object (kraken.py: `'c' in msg[0]`), and with both sides in one message
(two objects, `c` in the second) it would apply the update unverified, which is not the work
measured. An update that changes nothing within the top 1000 (a change deeper) is not sent
and not counted. The last update of every pair changes its top of book (the best level's
volume), so a bbo marks the moment it was applied. Volumes are 0.0001 to 10 (8 decimals).

Files:
- frames.jsonl: the frames as Kraken sends them, in the simulator's replay format
  (handlers/kraken/sim/replay.py): the snapshots, then the updates;
- truth.json: {"updates": updates to apply, "symbols": [...], "books": {symbol: [bids, asks]}
  (the final top 1000 a side, best first, [price, volume] floats), "bbo": {symbol: [bid, bid
  size, ask, ask size]}}, as bench/binance_depth.py's.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.binance_depth import DATA_DIR
from tests.kraken_stream import DEPTH, HIDDEN, T0, ZERO, Venue, update

VERSION = 1
DECIMALS = 2
CHANNEL = f"book-{DEPTH}"


def recording(pairs: int, updates: int, seed: int = 1) -> Path:
    """The directory of the recording, made first if it is not there yet."""
    path = DATA_DIR / f"kraken-book-v{VERSION}-p{pairs}-u{updates}-seed{seed}"
    if not (path / "truth.json").exists():
        print(f"making the Kraken book recording (once): {path}", flush=True)
        _make(path, pairs, updates // pairs, seed)
    return path


def truth(path: Path) -> dict:
    return json.loads((path / "truth.json").read_text())


def symbol_names(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    bases = (a + b + c for a in letters for b in letters for c in letters)
    return [f"{next(bases)}-USD" for _ in range(count)]


def _volume(rng: random.Random) -> str:
    return f"{rng.uniform(0.0001, 10):.8f}"


def _changes(pair: Venue, side: str, rng: random.Random) -> dict[tuple[str, int], str]:
    """One update's changes to one side of the venue's book (never crossing it)."""
    changes: dict[tuple[str, int], str] = {}
    for _ in range(rng.randint(1, 3)):
        deep = rng.random() < 0.1
        index = rng.randint(DEPTH - 20, DEPTH + 5) if deep else \
            min(int(rng.expovariate(1 / 6)), 40)
        prices = pair.top(side, HIDDEN)
        price = prices[min(index, len(prices) - 1)]
        kind = rng.random()
        if kind < 0.5:
            volume = _volume(rng)
        elif kind < 0.75 and len(prices) > 1:
            volume = ZERO
        else:  # a new level just behind it, if that price is free
            price += -1 if side == "b" else 1
            if price in pair.levels[side] or price in pair.levels["a" if side == "b" else "b"]:
                continue
            volume = _volume(rng)
        pair.set(side, price, volume)
        changes[side, price] = volume
    _refill(pair, side, changes, rng)
    return changes


def _refill(pair: Venue, side: str, changes: dict, rng: random.Random) -> None:
    """The venue's far end refills, unseen by a depth-1000 subscriber."""
    while len(pair.prices[side]) < HIDDEN:
        worst = pair.prices[side][0] if side == "b" else pair.prices[side][-1]
        far = worst + (-1 if side == "b" else 1) * rng.randint(1, 3)
        pair.set(side, far, _volume(rng))
        changes[side, far] = pair.levels[side][far]


def _make(path: Path, count: int, per_pair: int, seed: int) -> None:
    rng = random.Random(seed)
    names = symbol_names(count)
    pairs = [Venue(name, name.replace("-", "/"), DECIMALS) for name in names]
    lines = []
    for n, pair in enumerate(pairs):
        centre = rng.randint(1_000, 5_000_000)  # in cents
        for side, sign in (("a", 1), ("b", -1)):
            price = centre
            for _ in range(HIDDEN):
                price += sign * rng.randint(1, 3)
                pair.set(side, price, _volume(rng))
            pair.held[side] = set(pair.top(side))
        stamp = f"{T0:.6f}"
        lines.append(json.dumps([n + 1, {
            "as": [[p, v, stamp] for p, v in pair.strings("a")],
            "bs": [[p, v, stamp] for p, v in pair.strings("b")]}, CHANNEL, pair.native],
            separators=(",", ":")))
    sent = 0
    for i in range(per_pair):
        last = i == per_pair - 1
        for n, pair in enumerate(pairs):
            stamp = f"{T0 + 0.001 * (sent + 1):.6f}"
            objects: list = []
            while not objects:  # a change deeper than the top 1000 alone is not sent
                side = rng.choice("ab")
                if last:  # the top changes: the best level's volume
                    best = pair.top(side, 1)[0]
                    volume = _volume(rng)
                    pair.set(side, best, volume)
                    changes = {(side, best): volume}
                else:
                    changes = _changes(pair, side, rng)
                objects = update(pair, changes, stamp)
            if len(objects) != 1:
                raise AssertionError(f"an update of both sides: {objects}")
            lines.append(json.dumps([n + 1, *objects, CHANNEL, pair.native],
                                    separators=(",", ":")))
            sent += 1
    final = {}
    for pair in pairs:
        bids, asks = pair.book()
        final[pair.symbol] = [sorted(bids.items(), reverse=True), sorted(asks.items())]
    document = {"updates": sent, "symbols": names, "books": final,
                "bbo": {name: [*sides[0][0], *sides[1][0]] for name, sides in final.items()}}
    path.mkdir(parents=True, exist_ok=True)
    (path / "frames.jsonl").write_text("\n".join(lines) + "\n")
    (path / "truth.json").write_text(json.dumps(document))
