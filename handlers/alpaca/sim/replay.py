"""Recorded Alpaca frames for the simulator to replay.

The file holds one frame per line, exactly as the provider sent it in JSON (blank lines are
skipped). Each data message keeps its recorded bytes for JSON clients; msgpack clients get the
same map with `t` turned into the Timestamp extension. Control messages in the recording
(success, error, subscription) are left out: the simulator's session makes its own.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim.market import Item

CHANNEL_OF_TYPE = {
    "t": "trades", "q": "quotes", "b": "bars", "u": "updatedBars", "d": "dailyBars",
    "s": "statuses", "l": "lulds", "c": "corrections", "x": "cancelErrors",
}
_frame_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_message_decoder = msgspec.json.Decoder(dict)


class ReplayError(ValueError):
    """The replay file cannot be read as recorded Alpaca frames."""


def load(path: str | Path) -> list[list[Item]]:
    """The file's frames, each the list of its data messages. Raises ReplayError naming the
    line that is wrong."""
    frames = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(f"cannot read replay file {path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items = [item for raw in _frame_decoder.decode(line) if (item := _item(raw))]
        except (msgspec.DecodeError, ValueError, TypeError) as exc:
            raise ReplayError(f"{path}:{number}: not a recorded Alpaca frame: {exc}") from exc
        if items:
            frames.append(items)
    if not frames:
        raise ReplayError(f"{path}: no data messages to replay")
    return frames


def _item(raw: msgspec.Raw) -> Item | None:
    message = _message_decoder.decode(raw)
    channel = CHANNEL_OF_TYPE.get(message.get("T"))
    if channel is None:
        return None
    symbol = message.get("S")
    if not isinstance(symbol, str):
        raise ValueError(f"a {channel} message without a symbol")
    if isinstance(message.get("t"), str):
        message["t"] = wire.timestamp_ext(wire.parse_timestamp(message["t"]))
    return Item(channel, symbol, raw, msgspec.Raw(msgspec.msgpack.encode(message)))
