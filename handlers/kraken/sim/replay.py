"""Recorded Kraken frames for the simulator to replay, and the books they imply.

The file holds one frame per line, exactly as Kraken sent it: data arrays
`[channelID, payload..., channelName, pair]` and events (`{"event": ...}`); blank lines are
skipped. Each line keeps its recorded text, which is what goes out. Events are recorded
answers (systemStatus, subscriptionStatus, heartbeat...): the simulator makes its own, so they
are not replayed. A line that is neither is kept as garbage to send as it is (tests put
hostile frames on a real socket this way).

`ReplayBooks` follows the recorded book channels as a client would (snapshot, then updates
applied and truncated to the depth its channel name says), so that a client resubscribing in
the middle of a replay gets a snapshot of the book the recording implies there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.checksum import StringBook


class Frame(NamedTuple):
    line: str
    channel: str  # "": not a data array (garbage, sent as it is)
    pair: str
    message: list[Any] | None
    time_ns: int  # the latest time in it, for paced replays (0: none)


class ReplayError(ValueError):
    """The replay file cannot be read."""


def load(path: str | Path) -> list[Frame]:
    """The file's data frames and garbage in recorded order (events left out). ReplayError."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReplayError(f"cannot read replay file {path}: {exc}") from exc
    frames = [frame for line in text.splitlines() if line.strip()
              if (frame := _frame(line)) is not None]
    if not frames:
        raise ReplayError(f"{path}: no frames to replay")
    return frames


def _frame(line: str) -> Frame | None:
    try:
        message = wire.decode(line)
    except wire.Malformed:
        return Frame(line, "", "", None, 0)
    if isinstance(message, dict):
        return None  # a recorded answer: the simulator answers for itself
    return Frame(line, message[-2], message[-1], message, _latest(message))


def _latest(message: list[Any]) -> int:
    """The latest timestamp of a data message (0 if it has none that reads)."""
    stamps: list[Any] = []
    for payload in message[1:-2]:
        if isinstance(payload, dict):
            stamps += [level[2] for levels in payload.values() if isinstance(levels, list)
                       for level in levels if isinstance(level, list) and len(level) > 2]
        elif isinstance(payload, list):
            stamps += [e[2] for e in payload if isinstance(e, list) and len(e) > 2]
            if len(payload) > 2 and isinstance(payload[2], str):
                stamps.append(payload[2])
    latest = 0
    for stamp in stamps:
        try:
            latest = max(latest, wire.timestamp(stamp))
        except wire.Malformed:
            pass
    return latest


def pairs(frames: list[Frame]) -> set[str]:
    """The pairs the recording has data of (Kraken's names)."""
    return {frame.pair for frame in frames if frame.channel}


class ReplayBooks:
    """The book each recorded book channel implies, as far as the replay has come."""

    def __init__(self) -> None:
        self.books: dict[tuple[str, str], StringBook] = {}  # (channel name, pair)

    def apply(self, frame: Frame) -> None:
        if not frame.channel.startswith(wire.BOOK + "-") or frame.message is None:
            return
        try:
            depth = int(frame.channel.split("-", 1)[1])
            payloads = [p for p in frame.message[1:-2] if isinstance(p, dict)]
            if any("as" in p or "bs" in p for p in payloads):
                self.books[frame.channel, frame.pair] = StringBook(depth)
            book = self.books.get((frame.channel, frame.pair))
            if book is None:
                return
            for payload in payloads:
                for key, side in (("as", book.asks), ("a", book.asks), ("bs", book.bids),
                                  ("b", book.bids)):
                    for level in payload.get(key, []):
                        price, volume = level[0], level[1]
                        side.set(float(price), (price, volume) if float(volume) else None)
            book.asks.truncate(depth)
            book.bids.truncate(depth)
        except (ValueError, TypeError, IndexError, AttributeError, msgspec.ValidationError):
            return  # a recorded frame a client would refuse too

    def book(self, channel: str, pair: str) -> StringBook | None:
        return self.books.get((channel, pair))
