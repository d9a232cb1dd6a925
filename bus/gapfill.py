"""Gap fill, the client side: ask the recorder for exactly the messages a subscriber missed.

The recorder (consumers.recorder) answers on a REP socket at its `gapfill_endpoint`
(conventionally `ipc://{run_dir}/gapfill`, beside the bus's `subscribe` endpoint).

Request, one JSON frame:
    {"topic": "trade.alpaca.AAPL|", "epoch": 1764086400123456789, "first": 120, "last": 130}
    (the inclusive range of sequence numbers wanted, of that topic and publisher epoch; at most
    MAX_PER_REQUEST of them)
Answer, frames:
    1. JSON {"found": N, "missing": [[first, last], ...]}   (ranges the recorder does not have)
       or   {"error": "...", "reason": "bad_request" | "too_many"}
    2..N+1. the N recorded payloads (msgpack events, byte for byte as published), in sequence
       order; the topic is the one asked for.
See docs/recording.md ("Gap fill").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tickmesh.bus.request import NoAnswer, Requester

MAX_PER_REQUEST = 50_000
DEFAULT_TIMEOUT = 2.0
BAD_REQUEST = "bad_request"
TOO_MANY = "too_many"

Range = tuple[int, int]  # inclusive (first, last)


class GapFillUnavailable(NoAnswer):
    """No recorder answered in time, or the answer was not a gap fill."""


@dataclass(frozen=True)
class Request:
    topic: bytes
    epoch: int
    first: int
    last: int

    def encode(self) -> bytes:
        return json.dumps({"topic": self.topic.decode(), "epoch": self.epoch,
                           "first": self.first, "last": self.last}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Request":
        """The request in `raw`; ValueError if it is not one."""
        try:
            fields = json.loads(raw)
            request = cls(fields["topic"].encode(), fields["epoch"], fields["first"],
                          fields["last"])
        except (KeyError, TypeError, AttributeError, UnicodeError) as exc:
            raise ValueError(f"not a gap-fill request: {exc}") from None
        if not all(isinstance(n, int) and n >= 0 for n in (request.epoch, request.first,
                                                           request.last)):
            raise ValueError("epoch, first and last must be integers >= 0")
        if request.last < request.first:
            raise ValueError("last must be >= first")
        return request


@dataclass
class Fill:
    """What the recorder had: payloads in sequence order, and the ranges it did not have."""

    payloads: list[bytes] = field(default_factory=list)
    missing: list[Range] = field(default_factory=list)


def missing_ranges(wanted: Range, have: list[int]) -> list[Range]:
    """The inclusive ranges of `wanted` not in the sorted sequence numbers `have`."""
    out, expected = [], wanted[0]
    for seq in have:
        if seq > expected:
            out.append((expected, seq - 1))
        expected = seq + 1
    if expected <= wanted[1]:
        out.append((expected, wanted[1]))
    return out


class GapFiller:
    """A client of the recorder's gap-fill service; `fetch` asks, in as many requests as the
    range needs. Not thread-safe: one caller at a time."""

    def __init__(self, endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._requester = Requester(endpoint, "recorder", GapFillUnavailable)

    def fetch(self, topic: bytes, epoch: int, first: int, last: int) -> Fill:
        """The recorded messages of `topic` and `epoch` numbered first..last (inclusive);
        GapFillUnavailable if the recorder does not answer."""
        fill = Fill()
        for start in range(first, last + 1, MAX_PER_REQUEST):
            end = min(last, start + MAX_PER_REQUEST - 1)
            request = Request(topic, epoch, start, end).encode()
            part = _fill(self._requester.ask(request, self.timeout), self.endpoint)
            fill.payloads += part.payloads
            fill.missing += part.missing
        return fill

    def close(self) -> None:
        self._requester.close()


def _fill(frames: list[bytes], endpoint: str) -> Fill:
    try:
        header: dict[str, Any] = json.loads(frames[0])
        if "error" in header:
            raise GapFillUnavailable(f"the recorder at {endpoint} refused: {header['error']}")
        missing = [(int(a), int(b)) for a, b in header["missing"]]
        if header["found"] != len(frames) - 1:
            raise ValueError("payload count differs from 'found'")
    except (ValueError, KeyError, TypeError) as exc:
        raise GapFillUnavailable(f"unexpected answer from {endpoint}: {exc}") from None
    return Fill(frames[1:], missing)


def default_endpoint(subscribe_endpoint: str) -> str:
    """The conventional gap-fill endpoint beside a bus's ipc:// subscribe endpoint
    (ipc://DIR/subscribe -> ipc://DIR/gapfill); ValueError for another transport."""
    scheme, _, path = subscribe_endpoint.partition("://")
    if scheme != "ipc":
        raise ValueError(f"name the recorder's gapfill_endpoint: no default beside "
                         f"{subscribe_endpoint!r}")
    return f"ipc://{path.rpartition('/')[0]}/gapfill"
