"""The recorder's writing side: records are batched in memory and written to the current
segment on each `flush` (the recorder flushes every flush_ms, so a SIGKILL loses at most that
batch); a segment is closed once it reaches `segment_bytes` and at the end of each UTC day.

A write that fails (a full disk, ...) is cut back out of the file
(consumers.recorder.recording), the batch is dropped, and the journal is `failing`: it counts,
without buffering, what it is given (`lost`) until `resume` can open a new segment again,
whose first record is an OUTAGE saying since when and how many events were lost. Nothing here ever raises OSError to the caller.
`stop` makes it fail the same way on purpose (the free-space floor, consumers.recorder.retention).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable
from zlib import crc32

from tickmesh.consumers.recorder.recording import (BODY_HEAD, MARKER, MESSAGE, NS_PER_DAY, OUTAGE,
                                                   OUTAGE_DATA, RECORD_HEAD, SegmentWriter,
                                                   day_of, encode_record)


class Journal:
    def __init__(self, root: Path, segment_bytes: int) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        self.failure = ""  # why writing fails now; "" while it works
        self.written = 0  # events (MESSAGE records) written
        self.bytes_written = 0
        self.segments = 0  # segments opened
        self.lost = 0  # events given while failing, or dropped with a failed batch
        self._buffer = bytearray()
        self._buffered = 0  # MESSAGE records in the buffer
        self._first_ns = 0  # the first buffered record's time: the next segment's name
        self._number = 0  # the next record's number in its segment
        self._day_end = 0  # the end of the current segment's day
        self._segment: SegmentWriter | None = None
        self._failed_since = 0
        self._lost_in_outage = 0

    def add(self, type_: int, recv_ns: int, topic: bytes, data: bytes) -> None:
        """Buffer one record (or, while failing, count it as lost)."""
        if self.failure:
            self._lost_in_outage += type_ == MESSAGE
            return
        if recv_ns >= self._day_end:
            self._new_day(recv_ns)
        if not self._buffer:
            self._first_ns = recv_ns
        self._buffer += encode_record(self._number, type_, recv_ns, topic, data)
        self._number += 1
        self._buffered += type_ == MESSAGE

    def add_messages(self, messages: Iterable[tuple[bytes, bytes, int, int]],
                     clock: Callable[[], int] = time.time_ns) -> None:
        """`add` of MESSAGE records received now, each (topic, payload, epoch, seq) as a
        bus.subscriber.RawMessage: the hot path, with encode_record inlined."""
        if self.failure:
            self._lost_in_outage += sum(1 for _ in messages)
            return
        buffer, head, record_head, day_end = self._buffer, BODY_HEAD.pack, RECORD_HEAD.pack, \
            self._day_end
        number = self._number
        for topic, payload, _epoch, _seq in messages:
            recv_ns = clock()
            if recv_ns >= day_end or not buffer:
                self._buffered += number - self._number
                self._number = number
                self.add(MESSAGE, recv_ns, topic, payload)
                number, day_end = self._number, self._day_end
                continue
            body = head(number, MESSAGE, recv_ns, len(topic)) + topic + payload
            buffer += record_head(MARKER, len(body), crc32(body))
            buffer += body
            number += 1
        self._buffered += number - self._number
        self._number = number

    def flush(self) -> None:
        """Write the buffer to the current segment (opening one if needed)."""
        if self.failure or not self._buffer:
            return
        try:
            if self._segment is None:
                self._segment = SegmentWriter(self.root, self._first_ns)
                self.segments += 1
            self._segment.write(self._buffer)
        except OSError as exc:
            self._fail(exc)
            return
        self.written += self._buffered
        self.bytes_written += len(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._segment.size >= self.segment_bytes:
            self._close_segment()

    def resume(self) -> bool:
        """While failing, try to write again: True once the journal works again."""
        if not self.failure:
            return True
        now = time.time_ns()
        lost = self._lost_in_outage
        try:
            self._segment = SegmentWriter(self.root, now)
            self._segment.write(encode_record(0, OUTAGE, now, b"",
                                              OUTAGE_DATA.pack(self._failed_since, lost)))
        except OSError:
            self._close_segment()
            return False
        self.segments += 1
        self._number = 1
        self.lost += lost
        self._lost_in_outage = 0
        self.failure = ""
        self._day_end = (day_of(now) + 1) * NS_PER_DAY
        return True

    def stop(self, why: str) -> None:
        """Stop writing, as if a write had failed for `why`: the batch in memory is lost."""
        if self.failure:
            return
        self.failure = why
        self._failed_since = self._first_ns if self._buffer else time.time_ns()
        self._lost_in_outage = self._buffered
        self._buffer.clear()
        self._buffered = 0
        self._close_segment()

    @property
    def writing_day(self) -> int | None:
        """The day of the open segment, if one is open."""
        return self._segment.day if self._segment is not None else None

    def close(self) -> None:
        self.flush()
        self._close_segment()

    @property
    def lost_now(self) -> int:
        """Events lost so far, the current outage's included."""
        return self.lost + self._lost_in_outage

    def _new_day(self, recv_ns: int) -> None:
        self.flush()
        self._close_segment()
        self._day_end = (day_of(recv_ns) + 1) * NS_PER_DAY

    def _fail(self, exc: OSError) -> None:
        self.failure = f"cannot write to {self.root}: {exc.strerror or exc}"
        self._failed_since = self._first_ns or time.time_ns()
        self._lost_in_outage = self._buffered
        self._buffer.clear()
        self._buffered = 0
        self._close_segment()

    def _close_segment(self) -> None:
        self._number = 0  # the buffer is empty: its records went to this segment, or were lost
        if self._segment is not None:
            self._segment.close()
            self._segment = None
