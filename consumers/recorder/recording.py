"""The recording file format: append-only segments of framed, checksummed records
(docs/recording.md describes it for readers without tickmesh).

    RECORDING/YYYY-MM-DD/NNNNNNNNNNNNNNNNNNN.tmrec     a directory per UTC day; a segment's
                                                       name is its first record's time (ns)
    segment = header, record, record, ...
    header  = b"TMREC", format version (u8, 2), reserved (u16, 0)           8 bytes
    record  = MARKER (4 bytes), length of the body (u32), crc32 of the body (u32), body
    body    = number (u32: 0, 1, 2 ... in its segment), type (u8), recv_ns (u64),
              topic length (u16), topic, data
All integers little-endian. Types: MESSAGE (data: the msgpack event as received), GAP (data:
epoch, first missed sequence number, count: u64 each), OUTAGE (data: since_ns, events lost:
u64 each; the recorder could not write them, e.g. a full disk).

A reader that meets a record it cannot read (a bad marker, length or checksum) looks for the
next MARKER that starts a good record with a higher number, and goes on from there: damage costs
the records it touches, and each damaged place is a `Damage` (where, how many bytes, how many
records: the gap in the numbers). Version 1 segments (no marker, no number) are read as they
always were: up to their first bad record.

`SegmentWriter` appends to one segment; `Recording` reads a file or a directory of them,
skipping (and listing in `skipped`, and in `damage` for damaged bytes) what it cannot read: a
torn tail, damaged records, a segment of a newer format version, a file that is not a segment.
"""

from __future__ import annotations

import datetime
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator, Iterator, NamedTuple

MAGIC = b"TMREC"
FORMAT_VERSION = 2
SUFFIX = ".tmrec"
HEADER = struct.Struct("<5sBH")
MARKER = b"\xc1\xf5\x8a\x5e"
"""Starts every record: 0xC1 is the one byte msgpack never uses, and neither 0xC1 nor 0xF5
occurs in UTF-8 text, so it is rare inside events; a reader trusts a marker only with the good
record (length, checksum, number) that follows it."""
RECORD_HEAD = struct.Struct("<4sII")  # marker, length of the body, crc32 of the body
BODY_HEAD = struct.Struct("<IBQH")  # number, type, recv_ns, topic length
GAP_DATA = struct.Struct("<QQQ")  # epoch, first missed, count
OUTAGE_DATA = struct.Struct("<QQ")  # since_ns, events lost
MESSAGE, GAP, OUTAGE = 1, 2, 3
NS_PER_DAY = 86_400 * 10**9
_FILE_HEADER = HEADER.pack(MAGIC, FORMAT_VERSION, 0)
HEAD_BYTES = HEADER.size + len(MARKER)  # what tells how to read a segment
_V1_RECORD_HEAD = struct.Struct("<II")  # version 1: length of the body, crc32 of the body
_V1_BODY_HEAD = struct.Struct("<BQH")  # version 1: type, recv_ns, topic length
CORRUPT, TORN = "corrupt", "torn tail"


class RecordingError(Exception):
    """Not a recording at all: a missing path, or nothing in it is a segment."""


class Record(NamedTuple):
    type: int
    recv_ns: int
    topic: bytes
    data: bytes


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that could not be read: from `offset`, `size` bytes, which held
    `records` records (the gap in the record numbers; at the end of a segment, the markers
    found in them; None in a version 1 segment, which has neither). `why`: CORRUPT, or TORN
    (the last record cut short: a crash during a write, or the segment being written)."""

    segment: Path
    offset: int
    size: int
    records: int | None
    why: str

    def __str__(self) -> str:
        records = "records unknown" if self.records is None else counted(self.records, "record")
        return f"{self.segment}: {self.why} at byte {self.offset}: {counted(self.size, 'byte')} " \
               f"({records}) skipped"


def counted(count: int, thing: str) -> str:
    """`count` things, in English: 1 record, 2 records."""
    return f"{count} {thing}{'s' * (count != 1)}"


def encode_record(number: int, type_: int, recv_ns: int, topic: bytes, data: bytes) -> bytes:
    body = BODY_HEAD.pack(number, type_, recv_ns, len(topic)) + topic + data
    return RECORD_HEAD.pack(MARKER, len(body), zlib.crc32(body)) + body


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


class Reader:
    """Reads segments, noting what it skips: `skipped` (one line each, for people) and
    `damage` (the damaged places inside segments, as they are found)."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.damage: list[Damage] = []

    @property
    def bytes_skipped(self) -> int:
        return sum(d.size for d in self.damage)

    @property
    def records_skipped(self) -> int:
        return sum(d.records or 0 for d in self.damage)

    def summary(self) -> str:
        """What the damage cost, in one line."""
        return f"damaged recording: {counted(self.bytes_skipped, 'byte')}, " \
               f"{counted(self.records_skipped, 'record')} skipped in " \
               f"{counted(len(self.damage), 'place')}"

    def problems(self) -> list[str]:
        """What was skipped, for people: a line each, then the damage's total if there is
        any (what `tickmesh replay` and `export` say on stderr)."""
        return [f"skipped: {line}" for line in self.skipped] + \
            ([self.summary()] if self.damage else [])

    def segment_records(self, segment: Path, topic: bytes | None = None) -> Iterator[Record]:
        """The readable records of one segment, in order (only those of `topic`, if given:
        the others are checked, not copied)."""
        try:
            data = segment.read_bytes()
        except OSError as exc:
            self.skipped.append(f"{segment}: unreadable ({exc.strerror})")
            return
        version, problem = _version(data[:HEAD_BYTES])
        if not version:
            self.skipped.append(f"{segment}: skipped whole ({problem})")
            return
        if problem:
            self._note(Damage(segment, 0, HEADER.size, 0, CORRUPT))
        parse = _parse if version > 1 else _parse_v1
        unknown = yield from parse(data, segment, self._note, topic)
        if unknown:
            self.skipped.append(f"{segment}: {unknown} records of an unknown type skipped")

    def _note(self, damage: Damage) -> None:
        self.damage.append(damage)
        self.skipped.append(str(damage))


class Recording(Reader):
    """The segments under `path` (a segment file, or a directory searched recursively), in
    time order; RecordingError if there is nothing to read there."""

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(f"{self.path}: no such file or directory")
        if self.path.is_dir():
            self.segments = segments(self.path)
            if not self.segments:
                raise RecordingError(f"{self.path}: not a recording (no *{SUFFIX} segment in it)")
        else:
            self.segments = [self.path]
            version, problem = _version(_read_head(self.path))
            if not version and not problem.startswith("format version"):
                raise RecordingError(f"{self.path}: not a recording ({problem})")

    def records(self) -> Iterator[Record]:
        """Every readable record, in order; what is skipped is added to `skipped`."""
        for segment in self.segments:
            yield from self.segment_records(segment)


def segments(root: Path) -> list[Path]:
    """The segments under a directory, oldest first."""
    return sorted(root.rglob(f"*{SUFFIX}"), key=lambda p: (p.parent.name, p.name))


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            return file.read(HEAD_BYTES)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror})") from None


def _version(head: bytes) -> tuple[int, str]:
    """How to read a segment that starts with `head` (HEAD_BYTES of it): (its format version,
    "") if its header is good; (FORMAT_VERSION, "damaged header") if the header is damaged but
    a record marker follows it (the version byte is trusted only when it says 1 or 2); (0, why)
    if it cannot be read."""
    if len(head) < HEADER.size:
        return 0, "truncated header" if MAGIC.startswith(head[:len(MAGIC)]) else "not a segment"
    magic, version, _ = HEADER.unpack_from(head)
    marked = head[HEADER.size:] == MARKER
    if magic == MAGIC and version > FORMAT_VERSION:
        return 0, f"format version {version} is newer than this reader's {FORMAT_VERSION}"
    if magic == MAGIC and (version == FORMAT_VERSION or version == 1 and not marked):
        return version, ""
    if marked:
        return FORMAT_VERSION, "damaged header"
    return 0, f"unknown format version {version}" if magic == MAGIC else \
        "not a segment: no TMREC header"


Note = Callable[[Damage], None]


def _parse(data: bytes, segment: Path, note: Note,
           topic: bytes | None) -> Generator[Record, None, int]:
    """Yield the good records (of `topic`, if given) of a version 2 segment, resynchronizing
    after each bad one; return how many were of an unknown type."""
    end, offset, last, unknown = len(data), HEADER.size, -1, 0
    head, body_head, unpack_head, unpack_body = RECORD_HEAD.size, BODY_HEAD.size, \
        RECORD_HEAD.unpack_from, BODY_HEAD.unpack_from
    crc32 = zlib.crc32
    while offset < end:  # the checks of _good_number, inlined: this is every reader's hot path
        if end - offset >= head:
            marker, length, crc = unpack_head(data, offset)
            body, body_end = offset + head, offset + head + length
            if marker == MARKER and body_head <= length and body_end <= end and \
                    crc32(data[body:body_end]) == crc:
                last, type_, recv_ns, topic_len = unpack_body(data, body)
                offset, start = body_end, body + body_head
                if topic is not None and not (topic_len == len(topic) and
                                              data.startswith(topic, start)):
                    continue
                if type_ in (MESSAGE, GAP, OUTAGE):
                    yield Record(type_, recv_ns, data[start:start + topic_len],
                                 data[start + topic_len:body_end])
                else:
                    unknown += 1
                continue
        offset = _resync(data, offset, last, segment, note)
    return unknown


def _resync(data: bytes, bad: int, last: int, segment: Path, note: Note) -> int:
    """Where reading goes on after the bad record at `bad` (the end if nowhere); the skipped
    bytes are noted."""
    candidate = data.find(MARKER, bad + 1)
    while candidate != -1:
        number = _good_number(data, candidate)
        if number is not None and number > last:
            note(Damage(segment, bad, candidate - bad, number - last - 1, CORRUPT))
            return candidate
        candidate = data.find(MARKER, candidate + 1)
    records = 1 + data.count(MARKER, bad + 1)
    note(Damage(segment, bad, len(data) - bad, records, _tail_why(data, bad)))
    return len(data)


def _good_number(data: bytes, offset: int) -> int | None:
    """The number of the good record at `offset`, or None if there is none."""
    if len(data) - offset < RECORD_HEAD.size + BODY_HEAD.size:
        return None
    _marker, length, crc = RECORD_HEAD.unpack_from(data, offset)
    body = offset + RECORD_HEAD.size
    if length < BODY_HEAD.size or body + length > len(data) or \
            zlib.crc32(data[body:body + length]) != crc:
        return None
    return BODY_HEAD.unpack_from(data, body)[0]


def _tail_why(data: bytes, bad: int) -> str:
    """TORN if the bytes from `bad` to the end are a record cut short, else CORRUPT."""
    rest = data[bad:bad + RECORD_HEAD.size]
    if len(rest) < RECORD_HEAD.size:
        return TORN if MARKER.startswith(rest[:len(MARKER)]) else CORRUPT
    marker, length, _crc = RECORD_HEAD.unpack(rest)
    return TORN if marker == MARKER and bad + RECORD_HEAD.size + length > len(data) else CORRUPT


def _parse_v1(data: bytes, segment: Path, note: Note,
              topic: bytes | None) -> Generator[Record, None, int]:
    """Yield the good records (of `topic`, if given) of a version 1 segment, up to its first
    bad one (version 1 has no marker to resynchronize on); return how many were of an unknown
    type."""
    end, offset, unknown = len(data), HEADER.size, 0
    head, body_head = _V1_RECORD_HEAD.size, _V1_BODY_HEAD.size
    while offset < end:
        why = ""
        if end - offset < head:
            why = TORN
        else:
            length, crc = _V1_RECORD_HEAD.unpack_from(data, offset)
            body_end = offset + head + length
            if body_end > end:
                why = TORN
            elif length < body_head or zlib.crc32(data[offset + head:body_end]) != crc:
                why = CORRUPT
        if why:
            note(Damage(segment, offset, end - offset, None, why))
            break
        type_, recv_ns, topic_len = _V1_BODY_HEAD.unpack_from(data, offset + head)
        start, offset = offset + head + body_head, body_end
        if topic is not None and data[start:start + topic_len] != topic:
            continue
        if type_ in (MESSAGE, GAP, OUTAGE):
            yield Record(type_, recv_ns, data[start:start + topic_len],
                         data[start + topic_len:body_end])
        else:
            unknown += 1
    return unknown
