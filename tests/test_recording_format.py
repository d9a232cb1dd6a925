"""The segment format's claims in docs/recording.md, checked on segments written by the
recorder's own writer (consumers.recorder.journal): the layout byte for byte, a flipped byte
anywhere costs exactly the one record it is in, any corrupted span costs only the records it
touches (a property test), and version 1 segments are still read."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickmesh.consumers.recorder.journal import Journal
from tickmesh.consumers.recorder.recording import GAP, MESSAGE, OUTAGE, Record, Recording
from tests.conftest import REPO

HEADER_BYTES = 8
MARKER = bytes.fromhex("c1f58a5e")
FRAME = struct.Struct("<4sII")  # marker, length of the body, CRC-32 of the body
BODY = struct.Struct("<IBQH")  # number, type, recv_ns, topic length
T0 = 10**18  # 2001-09-09: all in one UTC day
TOPIC = b"trade.test.X|"


def write(root: Path, records: list[Record]) -> Path:
    """One segment of `records`, written by the recorder's Journal; its path."""
    journal = Journal(root, 1 << 30)
    for record in records:
        journal.add(record.type, record.recv_ns, record.topic, record.data)
    journal.close()
    [segment] = Recording(root).segments
    return segment


def spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record, walking the documented layout."""
    out, offset = [], HEADER_BYTES
    while offset < len(data):
        _marker, length, _crc = FRAME.unpack_from(data, offset)
        out.append((offset, offset + FRAME.size + length))
        offset += FRAME.size + length
    return out


def messages(count: int, size: int = 40) -> list[Record]:
    return [Record(MESSAGE, T0 + i, TOPIC, bytes([i % 251]) * size) for i in range(count)]


def read(segment: Path) -> Recording:
    recording = Recording(segment)
    recording.read = list(recording.records())
    return recording


def test_the_layout_is_the_documented_one(tmp_path):
    docs = (REPO / "docs" / "recording.md").read_text()
    assert "marker: the bytes `c1 f5 8a 5e`" in docs and "format version, `2`" in docs
    written = [*messages(3), Record(GAP, T0 + 5, TOPIC, struct.pack("<QQQ", 7, 10, 2)),
               Record(OUTAGE, T0 + 6, b"", struct.pack("<QQ", T0, 9))]
    data = write(tmp_path, written).read_bytes()
    assert data[:HEADER_BYTES] == b"TMREC" + bytes([2]) + b"\0\0"
    assert len(spans(data)) == len(written) and spans(data)[-1][1] == len(data)
    for number, ((start, end), record) in enumerate(zip(spans(data), written)):
        marker, length, crc = FRAME.unpack_from(data, start)
        body = data[start + FRAME.size:end]
        assert (marker, length, crc) == (MARKER, len(body), zlib.crc32(body))
        assert BODY.unpack_from(body) == (number, record.type, record.recv_ns, len(record.topic))
        assert body[BODY.size:] == record.topic + record.data


def flipped(segment: Path, data: bytes, offset: int) -> Recording:
    """The segment read with the byte at `offset` of `data` changed."""
    segment.write_bytes(data[:offset] + bytes([data[offset] ^ 0x55]) + data[offset + 1:])
    return read(segment)


def test_a_flipped_byte_anywhere_costs_exactly_the_record_it_is_in(tmp_path):
    written = messages(12)
    segment = write(tmp_path, written)
    data = segment.read_bytes()
    for index, (start, end) in enumerate(spans(data)):
        for offset in range(start, end):
            recording = flipped(segment, data, offset)
            assert recording.read == written[:index] + written[index + 1:], offset
            [damage] = recording.damage
            assert (damage.offset, damage.size, damage.records) == (start, end - start, 1)


def test_a_flipped_byte_in_the_header_costs_no_record_unless_it_says_a_newer_version(tmp_path):
    written = messages(3)
    segment = write(tmp_path, written)
    data = segment.read_bytes()
    for offset in (0, 1, 2, 3, 4, 6, 7):
        recording = flipped(segment, data, offset)
        assert recording.read == written, offset
        assert [(d.offset, d.size, d.records) for d in recording.damage] == \
            ([(0, HEADER_BYTES, 0)] if offset < 5 else [])  # the reserved bytes are not read
    recording = flipped(segment, data, 5)  # version 2 ^ 0x55: a newer version, it says
    assert recording.read == [] and "format version 87 is newer" in recording.skipped[0]
    segment.write_bytes(data[:5] + b"\0" + data[6:])  # an impossible version: a damaged header
    assert read(segment).read == written


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=30),
       where=st.floats(0, 1, exclude_max=True), noise=st.binary(min_size=1, max_size=600))
def test_any_corrupted_span_costs_only_the_records_it_touches(tmp_path_factory, payloads, where,
                                                              noise):
    written = [Record(MESSAGE, T0 + i, TOPIC, p) for i, p in enumerate(payloads)]
    segment = write(tmp_path_factory.mktemp("seg"), written)
    data = bytearray(segment.read_bytes())
    records = spans(bytes(data))
    first = HEADER_BYTES + int(where * (len(data) - HEADER_BYTES))
    span = range(first, min(first + len(noise), len(data)))
    for i, offset in enumerate(span):
        data[offset] ^= noise[i] or 1  # every byte of the span changes
    segment.write_bytes(bytes(data))

    touched = [i for i, (start, end) in enumerate(records) if start < span.stop and
               end > span.start]
    recording = read(segment)
    assert recording.read == [r for i, r in enumerate(written) if i not in touched]
    [damage] = recording.damage
    assert damage.offset == records[touched[0]][0]
    if touched[-1] < len(written) - 1:  # told exactly, unless the damage reaches the end
        assert (damage.size, damage.records) == (records[touched[-1]][1] - damage.offset,
                                                 len(touched))
    else:
        assert damage.offset + damage.size == len(data) and damage.records >= 1


def test_a_version_1_segment_is_still_read(tmp_path):
    written = messages(5)
    body = [struct.pack("<BQH", r.type, r.recv_ns, len(r.topic)) + r.topic + r.data
            for r in written]
    old = b"TMREC" + bytes([1]) + b"\0\0" + b"".join(
        struct.pack("<II", len(b), zlib.crc32(b)) + b for b in body)
    segment = tmp_path / "0000000000000000001.tmrec"
    segment.write_bytes(old)
    assert read(segment).read == written
    segment.write_bytes(old[:-3])  # a torn tail, as version 1 always said
    recording = read(segment)
    assert recording.read == written[:-1]
    assert "torn tail" in recording.skipped[0] and recording.damage[0].records is None
