"""One message as a subscriber hands it out: decoded into its event and checked against its
topic, or, in raw mode, kept as it came (a `RawMessage`). What cannot be either is
`Malformed`; reading a heartbeat for publisher watching decodes only its keys.

Every publisher puts an event under the topic its own kind, provider and symbol name
(`kind.provider.SYMBOL|`): an event that does not decode, or whose topic is not its own (a
trade under a quote topic), is malformed. Raw messages are not checked against their topic;
only their epoch and sequence number are read, for gap tracking (0 and 0 if they cannot be:
such a message is delivered, and not tracked).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from tickmesh.bus import events


class RawMessage(NamedTuple):
    """A message as received (raw mode): its two frames, and the epoch and sequence number read
    from the payload (0 and 0 if they could not be read: such a message is not gap-tracked)."""

    topic: bytes
    payload: bytes
    epoch: int
    seq: int


Item = events.AnyEvent | RawMessage


class _Stamp(msgspec.Struct, gc=False):
    """Only the keys gap tracking needs; msgspec skips the rest of the map unread."""

    q: int = 0
    e: int = 0


class Beat(msgspec.Struct, gc=False):
    """Only the keys of a heartbeat that publisher watching needs."""

    p: str = ""
    e: int = 0
    fin: bool = False


_stamp = msgspec.msgpack.Decoder(_Stamp).decode
_beat = msgspec.msgpack.Decoder(Beat).decode
_BAD = (msgspec.DecodeError, msgspec.ValidationError)


def beat(payload: bytes) -> Beat | None:
    """The keys of a heartbeat that publisher watching needs; None if it does not decode."""
    try:
        return _beat(payload)
    except _BAD:
        return None


def stamp(payload: bytes) -> tuple[int, int]:
    """(epoch, sequence number) of a message, read without decoding the rest; (0, 0) if they
    cannot be read."""
    try:
        read = _stamp(payload)
    except _BAD:
        return 0, 0
    return read.e, read.q


def topic_of(event: events.Event) -> bytes:
    """The topic a publisher puts `event` under (bus.topics.topic, without its checks: an
    event whose symbol holds a `|` matches no topic it can arrive on anyway)."""
    return f"{event.__struct_config__.tag}.{event.provider}.{event.symbol}|".encode()


class Malformed(Exception):
    """A message that does not decode, or whose event is not of its topic; in raw mode,
    `message` is what to deliver anyway (its payload not gap-tracked)."""

    def __init__(self, message: RawMessage | None = None) -> None:
        super().__init__()
        self.message = message


def convert(topic: bytes, payload: bytes, raw: bool) -> Item:
    """The event (the RawMessage, in raw mode); Malformed if it cannot be."""
    try:
        if not raw:
            event = events.decode(payload)
            if topic != topic_of(event):
                raise Malformed()  # e.g. a Trade under a quote topic
            return event
        stamp = _stamp(payload)
        return RawMessage(topic, payload, stamp.e, stamp.q)
    except _BAD:
        raise Malformed(RawMessage(topic, payload, 0, 0) if raw else None) from None
