"""Recorded Coinbase frames for the simulator to replay.

The file holds one frame per line, exactly as the exchange sent it: a JSON object with a
`type` (blank lines are skipped). Each line keeps its recorded text, which is what goes out;
its decoded object says whose it is (type and product_id) and when (`time`, if it has one).
A line that is not a JSON object is kept too, as garbage to send as it is (tests put hostile
frames on a real socket this way). `products(frames)` are the products the frames are of: the
simulator lists them while it replays them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from tickmesh.handlers.coinbase import wire


class Frame(NamedTuple):
    line: str
    message: dict[str, Any] | None  # None: not a JSON object, sent as it is
    time_ns: int  # 0: no time


class ReplayError(ValueError):
    """The replay file cannot be read."""


def load(path: str | Path) -> list[Frame]:
    """The file's frames in recorded order. Raises ReplayError."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReplayError(f"cannot read replay file {path}: {exc}") from exc
    frames = [_frame(line) for line in text.splitlines() if line.strip()]
    if not frames:
        raise ReplayError(f"{path}: no frames to replay")
    return frames


def products(frames: list[Frame]) -> set[str]:
    """The product_id of every frame that names one."""
    return {f.message["product_id"] for f in frames
            if f.message is not None and isinstance(f.message.get("product_id"), str)}


def _frame(line: str) -> Frame:
    try:
        message = wire.decode_message(line)
    except wire.Malformed:
        return Frame(line, None, 0)
    return Frame(line, message, _time(message))


def _time(message: dict[str, Any]) -> int:
    stamp = message.get("time")
    try:
        return wire.parse_time(stamp) if isinstance(stamp, str) else 0
    except wire.Malformed:
        return 0

