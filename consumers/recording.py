"""The recording file format: append-only segments of length-prefixed, checksummed records
(docs/recording.md describes it for readers without tickmesh).

    RECORDING/YYYY-MM-DD/NNNNNNNNNNNNNNNNNNN.tmrec     a directory per UTC day; a segment's
                                                       name is its first record's time (ns)
    segment = header, record, record, ...
    header  = b"TMREC", format version (u8, 1), reserved (u16, 0)           8 bytes
    record  = length (u32), crc32 of the body (u32), body (length bytes)
    body    = type (u8), recv_ns (u64), topic length (u16), topic, data
All integers little-endian. Types: MESSAGE (data: the msgpack event as received), GAP (data:
epoch, first missed sequence number, count: u64 each), OUTAGE (data: since_ns, events lost:
u64 each; the recorder could not write them, e.g. a full disk).

`SegmentWriter` appends to one segment; `Recording` reads a file or a directory of them,
skipping (and listing in `skipped`) what it cannot read: a torn or corrupt tail, a segment of
a newer format version, a file that is not a segment.
"""

from __future__ import annotations

import datetime
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

MAGIC = b"TMREC"
FORMAT_VERSION = 1
SUFFIX = ".tmrec"
HEADER = struct.Struct("<5sBH")
RECORD_HEAD = struct.Struct("<II")  # length of the body, crc32 of the body
BODY_HEAD = struct.Struct("<BQH")  # type, recv_ns, topic length
GAP_DATA = struct.Struct("<QQQ")  # epoch, first missed, count
OUTAGE_DATA = struct.Struct("<QQ")  # since_ns, events lost
MESSAGE, GAP, OUTAGE = 1, 2, 3
NS_PER_DAY = 86_400 * 10**9
_FILE_HEADER = HEADER.pack(MAGIC, FORMAT_VERSION, 0)


class RecordingError(Exception):
    """Not a recording at all: a missing path, or nothing in it is a segment."""


@dataclass(frozen=True)
class Record:
    type: int
    recv_ns: int
    topic: bytes
    data: bytes


def encode_record(type_: int, recv_ns: int, topic: bytes, data: bytes) -> bytes:
    body = BODY_HEAD.pack(type_, recv_ns, len(topic)) + topic + data
    return RECORD_HEAD.pack(len(body), zlib.crc32(body)) + body


def day_of(recv_ns: int) -> int:
    """Days since the epoch (UTC) of a time in ns."""
    return recv_ns // NS_PER_DAY


def day_name(day: int) -> str:
    """The directory of a day: YYYY-MM-DD."""
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


class SegmentWriter:
    """One segment file, opened for appending; `write` sends bytes to it (raises OSError,
    after cutting the file back to its last complete write)."""

    def __init__(self, root: Path, first_ns: int) -> None:
        self.day = day_of(first_ns)
        directory = root / day_name(self.day)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{first_ns:019d}{SUFFIX}"
        self.size = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            self.write(_FILE_HEADER)
        except OSError:
            self.close()
            self.path.unlink(missing_ok=True)
            raise

    def write(self, data: bytes | bytearray) -> None:
        done = 0
        try:
            with memoryview(data) as view:  # released even on error: `data` can be resized
                while done < len(data):
                    done += os.write(self._fd, view[done:])
        except OSError:
            os.ftruncate(self._fd, self.size)  # no torn record left behind (frees space too)
            raise
        self.size += len(data)

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class Recording:
    """The segments under `path` (a segment file, or a directory searched recursively), in
    time order; RecordingError if there is nothing to read there."""

    path: Path
    segments: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file or directory")
        if self.path.is_dir():
            self.segments = sorted(self.path.rglob(f"*{SUFFIX}"),
                                   key=lambda p: (p.parent.name, p.name))
            if not self.segments:
                raise RecordingError(f"{self.path}: not a recording (no *{SUFFIX} segment in it)")
        else:
            self.segments = [self.path]
            problem = _header_problem(_read_head(self.path))
            if problem and not problem.startswith("format version"):
                raise RecordingError(f"{self.path}: not a recording ({problem})")

    def records(self) -> Iterator[Record]:
        """Every readable record, in order; what is skipped is added to `skipped`."""
        for segment in self.segments:
            yield from self.segment_records(segment)

    def segment_records(self, segment: Path) -> Iterator[Record]:
        try:
            data = segment.read_bytes()
        except OSError as exc:
            self.skipped.append(f"{segment}: unreadable ({exc.strerror})")
            return
        problem = _header_problem(data[:HEADER.size])
        if problem:
            self.skipped.append(f"{segment}: skipped whole ({problem})")
            return
        yield from _parse(data, HEADER.size, segment, self.skipped)


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(HEADER.size)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None


def _header_problem(head: bytes) -> str:
    """Why `head` does not start a segment this reader can read ("" if it does)."""
    if len(head) < HEADER.size:
        return "truncated header" if MAGIC.startswith(head[:5]) else "not a segment"
    magic, version, _ = HEADER.unpack(head)
    if magic != MAGIC:
        return "not a segment: no TMREC header"
    if version > FORMAT_VERSION:
        return f"format version {version} is newer than this reader's {FORMAT_VERSION}"
    return ""


def _parse(data: bytes, offset: int, segment: Path, skipped: list[str]) -> Iterator[Record]:
    end, head, body_head = len(data), RECORD_HEAD.size, BODY_HEAD.size
    unknown = 0
    while offset < end:
        problem = ""
        if end - offset < head:
            problem = "torn tail"
        else:
            length, crc = RECORD_HEAD.unpack_from(data, offset)
            body_end = offset + head + length
            if body_end > end:
                problem = "torn tail"
            elif length < body_head or zlib.crc32(data[offset + head:body_end]) != crc:
                problem = "corrupt record (checksum mismatch)"
        if problem:
            skipped.append(f"{segment}: {problem} at byte {offset}: the last {end - offset} "
                           "bytes skipped")
            break
        type_, recv_ns, topic_len = BODY_HEAD.unpack_from(data, offset + head)
        topic_start = offset + head + body_head
        if type_ in (MESSAGE, GAP, OUTAGE):
            yield Record(type_, recv_ns, data[topic_start:topic_start + topic_len],
                         data[topic_start + topic_len:body_end])
        else:
            unknown += 1
        offset = body_end
    if unknown:
        skipped.append(f"{segment}: {unknown} records of an unknown type skipped")
