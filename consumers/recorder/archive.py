"""Gap fill, the recorder's side: find the messages a subscriber missed in the recording and
answer (the request and answer formats are bus.gapfill's, the client side).

`find` scans the segments newest first, keeping only the records of the topic asked for, and
stops early: sequence numbers of one publisher epoch only grow with time, so a segment holding
that topic with an older sequence number or an older epoch means no older segment can hold
more of the range. Damaged records are skipped as every reader skips them
(consumers.recorder.recording: on to the next good record). `Archive.answer` turns one request frame
into the answer's frames, and tells each damaged place it reads past once: a log line (file,
offset, bytes, records) and its counts (`bytes_skipped`, `records_skipped`).
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from tickmesh.bus.gapfill import (BAD_REQUEST, MAX_PER_REQUEST, TOO_MANY, Fill, Request,
                                   missing_ranges)
from tickmesh.consumers.recorder.recording import MESSAGE, Damage, Reader, segments
from tickmesh.runtime.logs import log

MAX_TOLD = 10_000  # damaged places remembered as told; beyond, they may be told again


class _Stamp(msgspec.Struct):
    q: int = 0
    e: int = 0


_stamp = msgspec.msgpack.Decoder(_Stamp).decode


class Archive:
    """The recording under `root`, as gap fill reads it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bytes_skipped = 0
        self.records_skipped = 0
        self._told: set[tuple[Path, int]] = set()

    def answer(self, raw: bytes) -> tuple[list[bytes], str]:
        """(the answer's frames, its outcome for the metrics: full, partial, none, bad_request
        or too_many)."""
        try:
            request = Request.decode(raw)
        except ValueError as exc:
            return [json.dumps({"error": str(exc), "reason": BAD_REQUEST}).encode()], BAD_REQUEST
        if request.last - request.first + 1 > MAX_PER_REQUEST:
            error = {"error": f"at most {MAX_PER_REQUEST} messages a request", "reason": TOO_MANY}
            return [json.dumps(error).encode()], TOO_MANY
        reader = Reader()
        fill = find(self.root, request, reader)
        self._tell(reader.damage)
        header = {"found": len(fill.payloads), "missing": fill.missing}
        outcome = "none" if not fill.payloads else "partial" if fill.missing else "full"
        return [json.dumps(header).encode(), *fill.payloads], outcome

    def _tell(self, damage: list[Damage]) -> None:
        for place in damage:
            if (place.segment, place.offset) in self._told:
                continue
            if len(self._told) >= MAX_TOLD:
                self._told.clear()
            self._told.add((place.segment, place.offset))
            self.bytes_skipped += place.size
            self.records_skipped += place.records or 0
            log().warning("gap fill: damaged recording skipped", segment=str(place.segment),
                          offset=place.offset, bytes=place.size, records=place.records,
                          why=place.why)


def find(root: Path, request: Request, reader: Reader) -> Fill:
    """The recorded payloads of the request's range, and the ranges not found."""
    found: dict[int, bytes] = {}
    wanted = request.last - request.first + 1
    for segment in reversed(segments(root)):
        reached_older = _scan(reader, segment, request, found)
        if reached_older or len(found) == wanted:
            break
    have = sorted(found)
    return Fill([found[seq] for seq in have], missing_ranges((request.first, request.last), have))


def _scan(reader: Reader, segment: Path, request: Request, found: dict[int, bytes]) -> bool:
    """Add the segment's messages of the range to `found`; True if it holds that topic from
    before the range (so that older segments need not be read)."""
    older = False
    for record in reader.segment_records(segment, request.topic):
        if record.type == MESSAGE:
            older |= _take(record.data, request, found)
    return older


def _take(payload: bytes, request: Request, found: dict[int, bytes]) -> bool:
    """Keep one message of the topic if it is in the range; True if it is from before it."""
    try:
        stamp = _stamp(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    if stamp.e != request.epoch:
        return stamp.e < request.epoch
    if request.first <= stamp.q <= request.last:
        found[stamp.q] = payload
    return stamp.q < request.first
