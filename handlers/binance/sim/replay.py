"""Recorded Binance traffic for the simulator to replay.

- The frames file: one combined-stream frame per line, as Binance sent it
  (`{"stream":"btcusdt@depth@100ms","data":{...}}`); blank lines are skipped, and a line that
  is not such a frame is kept as it is (it goes out verbatim: a way to put a hostile frame
  on a real socket).
- The snapshots file: one REST depth answer per line, `{"symbol":"BTCUSDT","response":{...}}`.
  `Snapshots.next(symbol)` gives that symbol's answers in order, then the last one again.

`first_update_ids(frames)` are the symbols the frames' streams are of (the simulator lists
them while it replays them), each with the U of its first recorded depthUpdate; a symbol with
no recorded answer gets `unrecorded_snapshot`: an empty book as of just before that update,
from which its recorded updates build its book.

`Hold` is one connection's replay held for the snapshots (the simulator's hold_for_snapshots):
it says when the frames up to every held symbol's first depthUpdate have gone, and waits until
a REST depth answer has been served for each of those symbols, or a deadline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from tickmesh.handlers.binance import wire


class ReplayError(ValueError):
    """A file that cannot be replayed; the message names the line."""


class Frame(NamedTuple):
    stream: str  # "" for a line that is not a frame: it goes to every subscriber as it is
    line: str
    raw: str  # the data alone, for a raw (/ws/...) connection
    event_ms: int  # E of the data, for real-time pacing (0: none)


def load_frames(path: str | Path) -> list[Frame]:
    frames = []
    for line in _lines(path):
        try:
            message = msgspec.json.decode(line)
        except (msgspec.DecodeError, RecursionError):
            message = None
        if (isinstance(message, dict) and isinstance(message.get("stream"), str)
                and isinstance(message.get("data"), dict)):
            data = message["data"]
            event_ms = data.get("E") if isinstance(data.get("E"), int) else 0
            frames.append(Frame(message["stream"], line, wire.encode(data), event_ms))
        else:
            frames.append(Frame("", line, line, 0))
    if not frames:
        raise ReplayError(f"{path}: no frames to replay")
    return frames


def first_update_ids(frames: list[Frame]) -> dict[str, int]:
    """{native symbol (BTCUSDT): U of its first recorded depthUpdate (0: none)}, for every
    symbol a frame's stream names, in the order they first come."""
    firsts: dict[str, int] = {}
    for frame in frames:
        try:
            native, channel = wire.split_stream(frame.stream)
        except wire.Malformed:
            continue
        if channel == "depth" and not firsts.get(native):
            firsts[native] = _first_id(frame.raw)
        else:
            firsts.setdefault(native, 0)
    return firsts


def depth_streams(frames: list[Frame]) -> dict[str, str]:
    """{stream: native symbol} of the recorded depth streams (btcusdt@depth@100ms: BTCUSDT)."""
    streams = {}
    for frame in frames:
        try:
            native, channel = wire.split_stream(frame.stream)
        except wire.Malformed:
            continue
        if channel == "depth":
            streams[frame.stream] = native
    return streams


def unrecorded_snapshot(first_id: int) -> dict[str, Any]:
    """The depth answer for a replayed symbol with no recorded one: an empty book as of just
    before its first recorded depthUpdate `first_id` (0: none)."""
    return {"lastUpdateId": max(0, first_id - 1), "bids": [], "asks": []}


def _first_id(raw: str) -> int:
    """The U of a frame's data (a JSON object, as load_frames encoded it; 0 if it has none)."""
    first = msgspec.json.decode(raw).get("U")
    return first if isinstance(first, int) and not isinstance(first, bool) and first > 0 else 0


class Hold:
    """One connection's replay held for the snapshots of `streams` ({depth stream: symbol}):
    due once each stream's first frame is `sent`, released once each symbol is `served`."""

    def __init__(self, streams: dict[str, str]) -> None:
        self.unsent = set(streams)
        self.unserved = set(streams.values())
        self.served_all = asyncio.Event()
        self.holding = False
        self.released = False

    def sent(self, stream: str) -> None:
        self.unsent.discard(stream)

    @property
    def due(self) -> bool:
        """Every stream's first frame has gone, and the hold has not been released."""
        return not self.unsent and not self.released

    def served(self, symbol: str) -> None:
        self.unserved.discard(symbol)
        if not self.unserved:
            self.served_all.set()

    async def wait(self, seconds: float) -> bool:
        """Hold until every symbol is served (True) or for `seconds` (False); released."""
        self.holding = True
        try:
            await asyncio.wait_for(self.served_all.wait(), seconds)
            return True
        except TimeoutError:
            return False
        finally:
            self.holding, self.released = False, True


class Snapshots:
    def __init__(self, path: str | Path | None = None) -> None:
        self.answers: dict[str, list[dict[str, Any]]] = {}
        self.served: dict[str, int] = {}
        for number, line in enumerate(_lines(path) if path else [], 1):
            try:
                entry = msgspec.json.decode(line)
                symbol, response = entry["symbol"].upper(), entry["response"]
                wire.decode_snapshot(wire.encode(response).encode())
            except (msgspec.DecodeError, KeyError, TypeError, AttributeError,
                    wire.Malformed) as exc:
                raise ReplayError(f"{path}:{number}: not {{\"symbol\": ..., \"response\": "
                                  f"a depth answer}}: {exc}") from None
            self.answers.setdefault(symbol, []).append(response)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self.answers

    def next(self, symbol: str) -> dict[str, Any] | None:
        answers = self.answers.get(symbol)
        if not answers:
            return None
        served = self.served.get(symbol, 0)
        self.served[symbol] = served + 1
        return answers[min(served, len(answers) - 1)]


def _lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from exc
    return [line for line in text.splitlines() if line.strip()]
