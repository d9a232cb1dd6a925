"""Gap fill, the recorder's side: find the messages a subscriber missed in the recording and
answer (the request and answer formats are bus.gapfill's, the client side).

`find` scans the segments newest first, reading only the records of the topic asked for, and
stops early: sequence numbers of one publisher epoch only grow with time, so a segment holding
that topic with an older sequence number or an older epoch means no older segment can hold
more of the range. `answer` turns one request frame into the answer's frames.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import msgspec

from bus.gapfill import BAD_REQUEST, MAX_PER_REQUEST, TOO_MANY, Fill, Request, missing_ranges
from consumers.recording import BODY_HEAD, HEADER, MAGIC, MESSAGE, RECORD_HEAD, SUFFIX


class _Stamp(msgspec.Struct):
    q: int = 0
    e: int = 0


_stamp = msgspec.msgpack.Decoder(_Stamp).decode


def answer(raw: bytes, root: Path) -> tuple[list[bytes], str]:
    """(the answer's frames, its outcome for the metrics: full, partial, none, bad_request or
    too_many)."""
    try:
        request = Request.decode(raw)
    except ValueError as exc:
        return [json.dumps({"error": str(exc), "reason": BAD_REQUEST}).encode()], BAD_REQUEST
    if request.last - request.first + 1 > MAX_PER_REQUEST:
        error = {"error": f"at most {MAX_PER_REQUEST} messages a request", "reason": TOO_MANY}
        return [json.dumps(error).encode()], TOO_MANY
    fill = find(root, request)
    header = {"found": len(fill.payloads), "missing": fill.missing}
    outcome = "none" if not fill.payloads else "partial" if fill.missing else "full"
    return [json.dumps(header).encode(), *fill.payloads], outcome


def find(root: Path, request: Request) -> Fill:
    """The recorded payloads of the request's range, and the ranges not found."""
    found: dict[int, bytes] = {}
    wanted = request.last - request.first + 1
    for segment in sorted(root.rglob(f"*{SUFFIX}"), key=lambda p: (p.parent.name, p.name),
                          reverse=True):
        reached_older = _scan(segment, request, found)
        if reached_older or len(found) == wanted:
            break
    have = sorted(found)
    return Fill([found[seq] for seq in have], missing_ranges((request.first, request.last), have))


def _scan(segment: Path, request: Request, found: dict[int, bytes]) -> bool:
    """Add the segment's messages of the range to `found`; True if it holds that topic from
    before the range (so that older segments need not be read)."""
    try:
        data = segment.read_bytes()
    except OSError:
        return False
    if data[:len(MAGIC)] != MAGIC:
        return False
    topic, offset, end = request.topic, HEADER.size, len(data)
    older = False
    while offset + RECORD_HEAD.size <= end:
        length, crc = RECORD_HEAD.unpack_from(data, offset)
        body, body_end = offset + RECORD_HEAD.size, offset + RECORD_HEAD.size + length
        if body_end > end or length < BODY_HEAD.size:
            break  # a torn tail
        type_, _recv_ns, topic_len = BODY_HEAD.unpack_from(data, body)
        start = body + BODY_HEAD.size
        if type_ == MESSAGE and topic_len == len(topic) and data.startswith(topic, start):
            older |= _take(data, body, body_end, start + topic_len, crc, request, found)
        offset = body_end
    return older


def _take(data: bytes, body: int, body_end: int, payload_start: int, crc: int,
          request: Request, found: dict[int, bytes]) -> bool:
    """Keep one message of the topic if it is in the range; True if it is from before it."""
    if zlib.crc32(data[body:body_end]) != crc:
        return False
    payload = data[payload_start:body_end]
    try:
        stamp = _stamp(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    if stamp.e != request.epoch:
        return stamp.e < request.epoch
    if request.first <= stamp.q <= request.last:
        found[stamp.q] = payload
    return stamp.q < request.first
