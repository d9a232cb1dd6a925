"""The recorder: writes every event it subscribes to (by default everything on the bus) as the
raw frames it received, with its receive time, to append-only segment files
(consumers.recorder.recording; docs/recording.md), and answers gap-fill requests from them.

    python -m tickmesh.consumers.recorder       (supervised; settings below)

It is just another subscriber (raw mode: nothing is decoded but each message's `q` and `e`),
so it never slows the bus; the gaps it sees itself are written into the recording as GAP
records. Its reading, writing (consumers.recorder.journal: a batch every `flush_ms`,
segments rotated by size and by UTC day) and gap-fill service (consumers.recorder.archive, at
`gapfill_endpoint`) run in one thread of their own, polled together, so that the asyncio loop keeps the heartbeat going.
A gap-fill request for messages the recorder has not read yet waits for them (at most
FILL_WAIT_S); the batch in memory is written before answering.

When writing fails (a full disk): an `alert` (what `recording_failed`) is raised and logged,
`recorder_writing` drops to 0, events are counted as lost (`recorder_events_lost`) instead of
buffered, and every `retry_s` the recorder tries again; once it can write, it records an
OUTAGE record, clears the alert and goes on. The bus is never held up.

Every `check_s` (consumers.recorder.retention): the day directories past `keep_days` and, oldest
first, past `keep_bytes` are deleted (never the day being written; each logged, counted in
`recorder_days_deleted` and `recorder_bytes_deleted`), then the free space is looked at: below
`min_free_bytes`, writing stops as on a full disk (the same alert, events counted lost) until
there is room again.

Its per-topic state (each topic's epoch and last sequence number, the subscriber's
bus.sequence tracker) is bounded by `max_topics`: to make room for a new topic, the topic
tracked longest ago is forgotten (`bus_topics_evicted`; its next message is recorded as first
seen, with no gap check against what came before), so every message is still recorded; the
topics of a publisher gone silent or stopped are forgotten first. So a publisher of endless
distinct topics cannot grow the recorder without bound, nor stop it recording.
Metrics: recorder_events_written, recorder_bytes_written, recorder_events_lost,
recorder_segments, recorder_writing, recorder_days_deleted, recorder_bytes_deleted,
gapfill_requests{outcome}, gapfill_messages_sent, gapfill_bytes_skipped, gapfill_records_skipped,
and the consumers' events_received, bus_gaps, bus_messages_missed, bus_duplicates, bus_stale_epoch, bus_topics_evicted, bus_implausible.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from tickmesh.bus import events, sockets, topics
from tickmesh.bus.gapfill import Request
from tickmesh.bus.sequence import DEFAULT_MAX_TOPICS
from tickmesh.bus.subscriber import Gap, Subscriber
from tickmesh.consumers.recorder.archive import Archive
from tickmesh.consumers.recorder.journal import Journal
from tickmesh.consumers.recorder.recording import GAP, GAP_DATA, day_of
from tickmesh.consumers.recorder.retention import expire, free_bytes
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import Counts, subscriber_counts
from tickmesh.runtime.settings import SettingsError, Strings, require

BATCH = 4096  # messages read before looking at the clock and the gap-fill socket
FILL_WAIT_S = 0.5  # how long a gap-fill request waits for messages not read yet
WATCH_SECONDS = 0.1  # how often the loop's thread is looked at for a change of state
RCVHWM = 100_000
"""The recorder's receive queue, whatever [bus] receive_hwm says: the recorder is the one
consumer that must ride out its own stalls (a slow disk flush, a GC pause) without a gap, so a
bus whose queues are kept small (to bound what a slow consumer costs) still leaves it a deep
one, in its own memory."""
MAX_TOPICS = DEFAULT_MAX_TOPICS
"""Topics the recorder tracks (and so records), by default: ~300 bytes of state each, ~30 MB
at most (a million topics held 426 MB when nothing bounded them)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """`directory` is required, e.g. "{run_dir}/recordings" (the config expands it)."""

    directory: str
    patterns: Strings = ("*",)
    segment_bytes: int = 64 * 1024 * 1024
    flush_ms: int = 100
    gapfill_endpoint: str = ""  # e.g. "ipc://{run_dir}/gapfill"; "": no gap-fill service
    retry_s: float = 1.0  # while writes fail, how often to try again
    rcvhwm: int = RCVHWM  # messages the subscriber queues before dropping
    max_topics: int = MAX_TOPICS  # topics tracked; past it the oldest is forgotten
    keep_days: int = 0  # UTC days kept, today's included; older ones deleted (0: no limit)
    keep_bytes: int = 0  # oldest days deleted while the recording is larger (0: no limit)
    min_free_bytes: int = 0  # below this free space, writing stops (0: no floor)
    check_s: float = 10.0  # how often retention and the free space are looked at

    def __post_init__(self) -> None:
        require(bool(self.directory), "directory", "a path", self.directory)
        require(self.segment_bytes >= 4096, "segment_bytes", "an integer >= 4096",
                self.segment_bytes)
        require(0 < self.flush_ms <= 10_000, "flush_ms", "an integer in 1..10000", self.flush_ms)
        require(self.retry_s > 0, "retry_s", "a number > 0", self.retry_s)
        require(self.rcvhwm > 0, "rcvhwm", "an integer > 0", self.rcvhwm)
        for key in ("keep_days", "keep_bytes", "min_free_bytes"):
            value = getattr(self, key)
            require(isinstance(value, int) and not isinstance(value, bool) and value >= 0, key,
                    "an integer >= 0 (0: no limit)", value)
        require(0 < self.check_s <= 3600, "check_s", "a number in (0, 3600]", self.check_s)
        require(self.max_topics > 0, "max_topics", "an integer > 0", self.max_topics)
        require(self.gapfill_endpoint.split("://")[0] in ("ipc", "tcp", ""), "gapfill_endpoint",
                "an ipc:// or tcp:// endpoint, or \"\"", self.gapfill_endpoint)
        try:
            for pattern in self.patterns:
                topics.Pattern.parse(pattern)
        except topics.TopicError as exc:
            raise SettingsError(f"settings.patterns: {exc}") from None

    def listen_endpoints(self) -> dict[str, str]:
        """Where it listens: checked against the config's other listeners (runtime.check)."""
        return {"gapfill_endpoint": self.gapfill_endpoint}


class Recorder:
    """The loop of the recorder's thread: `run` until `stop`."""

    def __init__(self, settings: Settings, bus: sockets.BusConfig, counts: Counts) -> None:
        self.settings = settings
        self.counts = counts
        self.journal = Journal(Path(settings.directory), settings.segment_bytes)
        self.sub = Subscriber(bus.subscribe_endpoints, settings.patterns, raw=True, on_gap=self._on_gap,
                              rcvhwm=settings.rcvhwm, max_topics=settings.max_topics,
                              evict_topics=True)
        self.archive = Archive(self.journal.root)
        self.service: zmq.Socket | None = None
        if settings.gapfill_endpoint:
            self.service = _bind_service(settings.gapfill_endpoint)
        self._request: tuple[Request | None, bytes, float] | None = None  # held until read
        self._stop = threading.Event()
        self.days_deleted = 0
        self.bytes_deleted = 0
        self.low_space = False  # writing stopped by the free-space floor

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        poller = zmq.Poller()
        for line in self.sub.sockets:  # one per bus line
            poller.register(line, zmq.POLLIN)
        if self.service is not None:
            poller.register(self.service, zmq.POLLIN)
        flush_s, next_flush, next_retry = self.settings.flush_ms / 1000, 0.0, 0.0
        next_check = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                ready = dict(poller.poll(max(0.0, next_flush - now) * 1000))
                if any(line in ready for line in self.sub.sockets):
                    self._read()
                if self.service in ready or self._request is not None:
                    self._serve()
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + self.settings.check_s
                    self._check()
                if now >= next_flush:
                    self.journal.flush()
                    next_flush = now + flush_s
                    self._count()
                if self.journal.failure and now >= next_retry:
                    next_retry = now + self.settings.retry_s
                    if self.low_space:
                        self._check()
                    if not self.low_space:
                        self.journal.resume()
        finally:
            self.journal.close()
            self._count()
            self.sub.close()
            if self.service is not None:
                self.service.close(linger=0)

    def _check(self) -> None:
        """Retention, then the free-space floor."""
        settings, journal = self.settings, self.journal
        if settings.keep_days or settings.keep_bytes:
            try:
                deleted = expire(journal.root, day_of(time.time_ns()), journal.writing_day,
                                 settings.keep_days, settings.keep_bytes)
            except OSError as exc:
                log().warning("recording retention failed", error=str(exc))
                deleted = []
            for day in deleted:
                self.days_deleted += 1
                self.bytes_deleted += day.size
                log().info("recording day deleted", day=day.day, bytes=day.size, rule=day.why,
                           limit=getattr(settings, day.why))
        if not settings.min_free_bytes:
            return
        try:
            free = free_bytes(journal.root)
        except OSError as exc:
            log().warning("cannot read the recording's free space", error=str(exc))
            return
        self.low_space = free < settings.min_free_bytes
        if self.low_space:
            journal.stop(f"{free} bytes free on the disk of {journal.root}, below "
                         f"min_free_bytes {settings.min_free_bytes}: not writing")

    def _read(self) -> None:
        self.journal.add_messages(self.sub.recv_ready(BATCH))

    def _on_gap(self, gap: Gap) -> None:
        self.journal.add(GAP, time.time_ns(), gap.topic,
                         GAP_DATA.pack(gap.epoch, gap.expected, gap.missed))

    def _serve(self) -> None:
        """Take a request (if none is held), and answer it once its messages have been read."""
        if self._request is None:
            raw = self.service.recv_multipart()
            self._request = (_parse(raw), raw[0] if len(raw) == 1 else b"", time.monotonic())
        request, raw, since = self._request
        if request is not None and not self._read_past(request) and \
                time.monotonic() - since < FILL_WAIT_S:
            return
        self._request = None
        self.journal.flush()
        frames, outcome = self.archive.answer(raw)
        self.counts["gapfill_requests", outcome] += 1
        self.counts["gapfill_messages_sent"] += len(frames) - 1
        self.service.send_multipart(frames)

    def _read_past(self, request: Request) -> bool:
        """Whether the recorder has read the last message of the request's range (or a later
        epoch of its topic), or never saw that topic at all."""
        position = self.sub.tracker.position(request.topic)
        if position is None:
            return True
        epoch, seq = position
        return epoch != request.epoch or seq >= request.last

    def _count(self) -> None:
        counts, journal, sub = self.counts, self.journal, self.sub
        counts["events_received"] = sub.received
        counts["bus_gaps"] = sub.gaps
        counts["bus_messages_missed"] = sub.missed
        counts["recorder_events_written"] = journal.written
        counts["recorder_bytes_written"] = journal.bytes_written
        counts["recorder_events_lost"] = journal.lost_now
        counts["recorder_segments"] = journal.segments
        counts["recorder_writing"] = 0 if journal.failure else 1
        counts["recorder_days_deleted"] = self.days_deleted
        counts["recorder_bytes_deleted"] = self.bytes_deleted
        counts["gapfill_bytes_skipped"] = self.archive.bytes_skipped
        counts["gapfill_records_skipped"] = self.archive.records_skipped


def _parse(frames: list[bytes]) -> Request | None:
    try:
        return Request.decode(frames[0]) if len(frames) == 1 else None
    except ValueError:
        return None


def _bind_service(endpoint: str) -> zmq.Socket:
    problem = sockets.owner_problem(endpoint)
    if problem:
        raise OSError(f"cannot bind the gap-fill service {problem}")
    return sockets.reply_server(endpoint, blocking=True)


async def work(ctx: process.ProcessContext[Settings]) -> None:
    recorder = Recorder(ctx.settings, ctx.spec.bus, ctx.counts)
    ctx.metrics.collect(lambda: subscriber_counts(recorder.sub))
    log().info("recording", directory=ctx.settings.directory, patterns=ctx.settings.patterns,
               gapfill=ctx.settings.gapfill_endpoint)
    watch = asyncio.create_task(_watch(recorder, ctx), name="watch")
    try:
        await asyncio.to_thread(recorder.run)
    finally:
        recorder.stop()
        watch.cancel()


async def _watch(recorder: Recorder, ctx: process.ProcessContext[Settings]) -> None:
    """Say so (log, alert) when writing starts or stops failing."""
    failing = ""
    while True:
        await asyncio.sleep(WATCH_SECONDS)
        failure = recorder.journal.failure
        if failure == failing:
            continue
        failing = failure
        if failure:
            log().error("recording failed: events are being lost until it can write again",
                        error=failure)
        else:
            log().info("recording resumed", events_lost=recorder.journal.lost)
        _alert(ctx, "raised" if failure else "cleared",
               failure or f"recording again; {recorder.journal.lost} events lost so far")


def _alert(ctx: process.ProcessContext[Settings], state: str, message: str) -> None:
    now = time.time_ns()
    ctx.publisher.publish(events.Alert(provider=ctx.name, ts_event=now, ts_recv=now,
                                       state=state, what="recording_failed", message=message))


def main() -> None:
    process.run(work, Settings)


if __name__ == "__main__":
    main()
