"""Metrics with a schema: every metric a tickmesh process records is declared in SCHEMA, with
its kind (counter, gauge, histogram), its labels and what it means; docs/metrics.md lists
them. Each process has one `Metrics` registry, and its heartbeat carries the registry's
samples every second (bus.events.Heartbeat), ready for a Prometheus exporter.

Counting stays one dict operation on the hot path. `Counts` is a collections.Counter keyed by
the metric's name, or by a tuple (name, label values...) for a labelled metric:

    counts["frames_received"] += 1
    counts["bad_input", "malformed"] += 1          # bad_input{reason="malformed"}

and it refuses, at the first use of a key, a name the schema does not declare or the wrong
number of label values: ad-hoc names cannot creep in. Pure protocol modules take any Counter
(they import nothing from here); the runtime hands them the process's `Counts`.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from tickmesh.bus.events import Sample

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"
EVENT_LATENCY = "event_latency_seconds"  # handlers observe it, the supervisor reads it


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds (DEFAULT_BUCKETS if none)


SCHEMA: dict[str, Metric] = {m.name: m for m in (
    # every process
    Metric("events_published", COUNTER, "events this process put on the bus",
           ("kind", "provider")),
    Metric("uptime_seconds", GAUGE, "seconds since the process started"),
    Metric("bad_input", COUNTER, "input refused and skipped: frames, messages, requests, "
           "settings of a control request; the reason says which", ("reason",)),
    # handlers
    Metric("connects", COUNTER, "connection attempts to the provider"),
    Metric("reconnects", COUNTER, "attempts after the first"),
    Metric("frames_received", COUNTER, "frames (WebSocket messages) read from the provider"),
    Metric("provider_errors", COUNTER, "errors the provider reported, by its code", ("code",)),
    Metric("stale_connections", COUNTER, "connections ended for silence or unanswered pings"),
    Metric("protocol_faults", COUNTER, "exceptions the protocol raised on a frame (a bug: the "
           "frame is skipped, the connection goes on)"),
    Metric("protocol_problems", COUNTER, "bad input the protocol reported and skipped "
           "(bad_input has the reasons)"),
    Metric("timers_fired", COUNTER, "timers a protocol asked for that came due"),
    Metric("http_requests", COUNTER, "HTTP requests made for a protocol, by outcome "
           "(a status code, or 'failed')", ("outcome",)),
    Metric("resubscribes", COUNTER, "single-symbol resubscriptions (resyncs)"),
    Metric("control_requests", COUNTER, "control requests received over the bus", ("action",)),
    Metric("reconnect_delay_seconds", HISTOGRAM, "waits before reconnecting"),
    Metric(EVENT_LATENCY, HISTOGRAM, "receive time minus the provider's event time "
           "(ts_recv - ts_event), of the first event of each frame (unless a bar: its time is "
           "its start)",
           buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0)),
    Metric("quotes_crossed", COUNTER, "quotes published with the bid at or above the ask "
           "(locked or crossed: real market data, not dropped)", ("provider",)),
    # coinbase
    Metric("trades_missed", COUNTER, "trades the provider's trade ids show were lost"),
    Metric("resyncs", COUNTER, "books found out of step and resynced, by why", ("reason",)),
    Metric("symbols_refused", COUNTER, "subscribes of one symbol the provider refused "
           "(unknown or delisted), retries included", ("provider",)),
    # kraken
    Metric("checksum_mismatches", COUNTER, "book updates whose venue checksum did not match the "
           "book after applying them (Kraken's CRC32 of the top 10): never published, the "
           "symbol resynced"),
    # binance
    Metric("binance_snapshots", COUNTER, "Binance REST depth snapshots, by outcome "
           "(requested, applied, stale, failed, refused)", ("outcome",)),
    Metric("binance_rest_backoffs", COUNTER, "Binance REST holds begun: a 429 (too much "
           "weight) or a 418 (IP banned) stopped every REST request until its Retry-After",
           ("status",)),
    Metric("binance_snapshot_queue", GAUGE, "Binance snapshot requests waiting for the "
           "REST weight budget or a free slot"),
    Metric("binance_rest_weight", GAUGE, "Binance REST request weight sent in the last minute"),
    # simulators
    Metric("sim_connections", COUNTER, "client connections accepted"),
    Metric("sim_frames_sent", COUNTER, "frames sent to clients"),
    Metric("sim_messages_sent", COUNTER, "data messages sent to clients"),
    Metric("sim_errors_sent", COUNTER, "protocol errors sent to clients, by code", ("code",)),
    Metric("sim_slow_clients", COUNTER, "clients dropped for not reading what was sent"),
    Metric("sim_controls", COUNTER, "test controls applied (drop, stall, ...)", ("action",)),
    # consumers
    Metric("events_received", COUNTER, "events a consumer took from the bus"),
    Metric("bus_gaps", COUNTER, "sequence gaps a consumer saw (it was too slow)"),
    Metric("bus_messages_missed", COUNTER, "messages lost in those gaps"),
    Metric("bus_duplicates", COUNTER, "messages dropped by a consumer's subscriber as duplicates "
           "(the same publisher epoch, a sequence number at or below the last)"),
    Metric("bus_stale_epoch", COUNTER, "messages dropped by a consumer's subscriber from a "
           "publisher epoch older than the newest seen on their topic"),
    Metric("bus_topics_evicted", COUNTER, "topics a consumer's subscriber forgot to make room "
           "for a new one past its max_topics (the recorder: every message still recorded)"),
    Metric("bus_implausible", COUNTER, "messages dropped by a consumer's subscriber for a "
           "sequence number more than MAX_GAP ahead (forged or corrupt)"),
    Metric("bus_topics_refused", COUNTER, "messages dropped by a consumer's subscriber because "
           "it already tracks its max_topics topics"),
    Metric("line_duplicates", COUNTER, "second copies a consumer's subscriber dropped, with "
           "two bus lines: the copy of a message the other line delivered first"),
    Metric("line_first", COUNTER, "messages a consumer's subscriber took from each bus line "
           "first, with two lines (a line that is seldom first is slow)", ("line",)),
    Metric("publishers_gone", COUNTER, "publishers a consumer was told of as gone: silent (no "
           "heartbeat for heartbeat_timeout) or stopped (a final heartbeat)", ("how",)),
    Metric("lines_printed", COUNTER, "lines the tail printed"),
    # order-book builder
    Metric("books", GAUGE, "books the builder keeps, by state", ("state",)),
    Metric("book_resyncs", COUNTER, "resync requests the builder sent, by provider and reason "
           "(gap, missed_snapshot, crossed, timeout: asked again)", ("provider", "reason")),
    Metric("books_crossed", COUNTER, "books found crossed or locked (never published as truth)",
           ("provider",)),
    Metric("book_deltas_ignored", COUNTER, "deltas not applied: to a book not live, or of an "
           "older generation", ("reason",)),
    Metric("book_snapshots_ignored", COUNTER, "snapshots not applied: older than the newest "
           "version of the book seen (old_snapshot)", ("reason",)),
    Metric("books_refused", COUNTER, "book events dropped because the builder keeps max_books "
           "books already"),
    Metric("book_requests", COUNTER, "snapshot-service requests, by outcome (ok, unknown_book, "
           "bad_request)", ("outcome",)),
    # bars and consumers
    Metric("bar_trades_late", COUNTER, "trades that came after their bar had closed (its end "
           "+ grace): counted in no bar of that interval", ("provider", "interval")),
    Metric("bars_open", GAUGE, "bars the bar builder is filling (one per provider, symbol, "
           "interval and start)"),
    Metric("consumer_errors", COUNTER, "exceptions a consumer's handler raised (that event is "
           "skipped; the consumer goes on)", ("hook",)),
    # recorder
    Metric("recorder_events_written", COUNTER, "events the recorder wrote to its segments"),
    Metric("recorder_bytes_written", COUNTER, "bytes the recorder wrote, record framing included"),
    Metric("recorder_events_lost", COUNTER, "events received but not written, because writing "
           "failed (a full disk)"),
    Metric("recorder_segments", COUNTER, "segment files the recorder opened"),
    Metric("recorder_writing", GAUGE, "1 while the recorder can write, 0 while writing fails"),
    Metric("recorder_days_deleted", COUNTER, "day directories the recorder's retention deleted "
           "(keep_days, keep_bytes)"),
    Metric("recorder_bytes_deleted", COUNTER, "bytes of the day directories retention deleted"),
    Metric("gapfill_requests", COUNTER, "gap-fill requests answered, by outcome (full, partial, "
           "none, bad_request, too_many)", ("outcome",)),
    Metric("gapfill_messages_sent", COUNTER, "recorded messages sent in gap-fill answers"),
    Metric("gapfill_bytes_skipped", COUNTER, "damaged bytes of the recording gap fill read past "
           "(each damaged place counted once)"),
    Metric("gapfill_records_skipped", COUNTER, "records lost in those damaged bytes"),
    # monitor
    Metric("alerts_raised", COUNTER, "alerts the heartbeat monitor raised, by check",
           ("what",)),
    Metric("alerts_active", GAUGE, "alerts raised and not yet cleared"),
    Metric("monitored_feeds", GAUGE, "feeds the monitor watches, by their market's phase now "
           "(closed, pre, regular, post)", ("phase",)),
    Metric("restart_requests", COUNTER, "hung processes the monitor asked the supervisor "
           "about, by outcome (restarted, refused, not_hung, no_supervisor)", ("outcome",)),
    # forwarder
    Metric("forwarder_messages_in", COUNTER, "messages the forwarder took from publishers "
           "(heartbeats and status included; subscriptions not)"),
    Metric("forwarder_messages_out", COUNTER, "messages the forwarder handed on to its "
           "subscribers' side (what a slow subscriber loses at its high-water mark included)"),
    # supervisor
    Metric("child_restarts", COUNTER, "restarts of a supervised child", ("child",)),
    Metric("child_running", GAUGE, "1 while the child runs, else 0", ("child",)),
    Metric("log_lines_dropped", COUNTER, "lines of a process's output not written to the "
           "console or to its log file (to: console, file): its writer was too far behind, "
           "or the write failed", ("child", "to")),
)}

DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)


class UnknownMetric(KeyError):
    """A metric name the schema does not declare, or the wrong label values for it."""


def check_key(key: Hashable, kinds: tuple[str, ...] = (COUNTER, GAUGE)) -> Metric:
    """The schema entry for a Counts key, or UnknownMetric."""
    name, values = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
    metric = SCHEMA.get(name)  # type: ignore[arg-type]
    if metric is None or metric.kind not in kinds:
        raise UnknownMetric(f"{name!r} is not a declared {' or '.join(kinds)} "
                            "(runtime.metrics.SCHEMA)")
    if len(values) != len(metric.labels):
        raise UnknownMetric(f"{name!r} takes the labels {metric.labels}, got {values!r}")
    return metric


class Counts(Counter):
    """Counters and gauges by key (see the module's docstring)."""

    def __missing__(self, key: Hashable) -> int:
        check_key(key)
        return 0


class Histogram:
    def __init__(self, buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def samples(self, name: str) -> list[Sample]:
        """Prometheus' shape: cumulative name_bucket{le=...}, name_sum, name_count."""
        out, total = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts):
            total += count
            out.append(Sample(f"{name}_bucket", HISTOGRAM, {"le": bound}, float(total)))
        out.append(Sample(f"{name}_sum", HISTOGRAM, {}, self.sum))
        out.append(Sample(f"{name}_count", HISTOGRAM, {}, float(total)))
        return out


Collector = Callable[[], Iterable[tuple[Hashable, float]]]
"""Gives (key, value) pairs computed when a snapshot is taken (e.g. from the publisher)."""


class Metrics:
    """One process's registry: counts, histograms, and collectors read at snapshot time."""

    def __init__(self) -> None:
        self.counts = Counts()
        self._histograms: dict[str, Histogram] = {}
        self._collectors: list[Collector] = []
        self._started = time.monotonic()

    def histogram(self, name: str) -> Histogram:
        if name not in self._histograms:
            metric = check_key(name, (HISTOGRAM,))
            self._histograms[name] = Histogram(metric.buckets or DEFAULT_BUCKETS)
        return self._histograms[name]

    def collect(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def samples(self) -> list[Sample]:
        """Every metric's current value, labelled as the schema says."""
        self.counts["uptime_seconds"] = round(time.monotonic() - self._started, 3)
        pairs = list(self.counts.items())
        for collector in self._collectors:
            pairs.extend(collector())
        out = [_sample(key, value) for key, value in pairs]
        for name, histogram in self._histograms.items():
            out.extend(histogram.samples(name))
        return out


def subscriber_counts(sub: Any) -> list[tuple[Hashable, float]]:
    """A bus subscriber's drop counters (bus.sequence), as a collector's pairs:
    `metrics.collect(lambda: subscriber_counts(sub))`."""
    tracker, arbiter = sub.tracker, sub.arbiter
    pairs = [("bus_duplicates", tracker.duplicates), ("bus_stale_epoch", tracker.stale_epoch),
             ("bus_topics_refused", tracker.topics_refused),
             ("bus_implausible", tracker.implausible),
             ("bus_topics_evicted", tracker.topics_evicted)]
    if arbiter is not None:  # two bus lines (bus.lines)
        pairs += [("line_duplicates", arbiter.duplicates),
                  (("line_first", "A"), arbiter.first[0]), (("line_first", "B"), arbiter.first[1])]
    return pairs


def flat(counts: Counts) -> dict[str, float]:
    """Counts as a JSON-able map, labelled keys in Prometheus' style: bad_input{reason="x"}."""
    out = {}
    for key, value in counts.items():
        sample = _sample(key, value)
        labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
        out[f"{sample.name}{{{labels}}}" if labels else sample.name] = value
    return out


def _sample(key: Hashable, value: float) -> Sample:
    metric = check_key(key)
    values = key[1:] if isinstance(key, tuple) else ()
    return Sample(metric.name, metric.kind, dict(zip(metric.labels, map(str, values))),
                  float(value))
