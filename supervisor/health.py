"""Each supervised process's health, as the bus shows it: a pure aggregator (no I/O) that the
supervisor feeds with every heartbeat and status event it sees, and the time it saw it (unix
seconds, from any clock: tests pass fake ones).

From a process's heartbeats (runtime.metrics; counters cumulative, a new `epoch` is a restart):
its events published (heartbeats and status excluded) and their rate over the last RATE_WINDOW
seconds, the consumers' events received, when its count of events last grew, the sequence gaps
it saw (bus gaps, resyncs, trades missed), its reconnects, and its event latency's median and
99th percentile over the last LATENCY_WINDOW seconds (interpolated in the histogram's buckets,
as Prometheus' histogram_quantile does). The forwarder publishes no events of its own: what it
forwards (forwarder_messages_out, and _in) is its events published and received.

From a handler's Status events: its connection (`feed`). A Status names its provider (the
handler's topic source, not necessarily the process's name); it is matched to its process by
the publisher epoch that both the Status and the process's heartbeats carry (one publisher per
process), which also tells two handlers of the same provider apart, and a restarted handler's
connection from its previous life's. A symbol-less Status is the connection's state; a
symbol's "resyncing" puts the symbol in `resyncing` until that handler's next book snapshot of
it (`snapshot`) or another Status of that symbol. The last error is the last Status "error" or
"disconnected" with a code or a message.

A process that stopped tells no stale rates: once its final heartbeat came (it stopped on
purpose: bus.events.Heartbeat.final), or the supervisor saw its process exit (`ended`: killed
outright, it sends none), it is stopped; when no heartbeat came for SILENT_AFTER s while it
should run (hung, or the bus is), it is silent. Either way its rates are 0, its latency
unknown, and its feed's state says so (STOPPED or SILENT, never connected) until a heartbeat of
a new life (a new epoch) comes.

Heartbeats of an epoch older than the process's current one (a replay onto the live bus) are
ignored while the current one's keep coming; after SUPERSEDED_AFTER s without them, an older
epoch is a new life too (a restart after the clock was set back).

Memory is bounded: at most MAX_PROCESSES processes (the longest silent is forgotten first),
each with a LATENCY_WINDOW of heartbeats, and the connections of at most MAX_EPOCHS publisher
epochs besides the processes' own (those of no process are forgotten first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from tickmesh.bus.events import Heartbeat, Sample, Status
from tickmesh.runtime.metrics import EVENT_LATENCY

RATE_WINDOW = 5.0
LATENCY_WINDOW = 10.0
MAX_PROCESSES = 1024
MAX_EPOCHS = 256
SUPERSEDED_AFTER = 5.0
SILENT_AFTER = 3.0  # seconds without a heartbeat (they come every second): silent
STOPPED, SILENT = "stopped", "silent"
CONNECTED = frozenset({"connected", "authenticated", "subscribed"})
ERRORS = frozenset({"error", "disconnected"})
RESYNCING = "resyncing"
NOT_EVENTS = frozenset({"heartbeat", "status"})
GAPS = frozenset({"bus_gaps", "resyncs", "trades_missed"})
FORWARDED_IN, FORWARDED_OUT = "forwarder_messages_in", "forwarder_messages_out"
Quiet = tuple[str, float]  # STOPPED or SILENT, and since when (unix seconds)


@dataclass(frozen=True)
class Point:
    """The counters followed over time, as one heartbeat had them, and when it came."""

    at: float
    published: float
    received: float | None  # None: the process has counted no events_received (yet)
    latency: dict[float, float]  # upper bound -> cumulative count


@dataclass
class Feed:
    """One handler's connection (one provider of one publisher epoch)."""

    provider: str
    state: str = "unknown"  # until a symbol-less Status says
    since: float = 0.0
    last_error: dict[str, Any] | None = None
    resyncing: set[str] = field(default_factory=set)
    updated: float = 0.0

    def stop(self, at: float) -> None:
        """Its process stopped (at `at`): so is the connection, for good."""
        self.state, self.since = STOPPED, at
        self.resyncing.clear()

    def apply(self, status: Status, now: float) -> None:
        at = status.ts_event / 1e9
        self.updated = now
        if status.state in ERRORS and (status.code or status.message):
            self.last_error = {"code": status.code, "message": status.message, "at": at}
        if status.symbol and status.state == RESYNCING:
            self.resyncing.add(status.symbol)
        elif status.symbol:
            self.resyncing.discard(status.symbol)
        elif status.state != self.state:
            self.state, self.since = status.state, at

    @property
    def connected(self) -> bool:
        return self.state in CONNECTED

    def report(self, quiet: Quiet | None = None) -> dict[str, Any]:
        """As it is, or as its process's silence makes it (`quiet`: STOPPED or SILENT, and
        since when)."""
        state, since = quiet or (self.state, self.since)
        return {"provider": self.provider, "state": state,
                "connected": quiet is None and self.connected, "since": since,
                "last_error": self.last_error,
                "resyncing": [] if quiet else sorted(self.resyncing)}


@dataclass
class ProcessHealth:
    """What the heartbeats of one process say: the latest, and recent history."""

    epoch: int
    samples: list[Sample]
    received_at: float
    history: deque[Point]
    last_event_at: float | None = None
    ended_at: float | None = None  # when it stopped (its final heartbeat, or its exit)

    @property
    def latest(self) -> Point:
        return self.history[-1]

    def quiet(self, now: float) -> Quiet | None:
        """(STOPPED, when) once it stopped, (SILENT, its last heartbeat's time) after
        SILENT_AFTER s without one, else None: it heartbeats."""
        if self.ended_at is not None:
            return STOPPED, self.ended_at
        if now - self.received_at > SILENT_AFTER:
            return SILENT, self.received_at
        return None

    def value(self, names: Iterable[str]) -> float:
        """The sum of every sample named one of `names`, whatever its labels."""
        wanted = set(names)
        return sum(sample.value for sample in self.samples if sample.name in wanted)

    def rate(self, window: float, of: str) -> float | None:
        """Per second over about `window` s: the counter `of` ("published" or "received")."""
        base, last = self.base(window), self.latest
        if getattr(last, of) is None:
            return None
        if last.at <= base.at:
            return 0.0
        return (getattr(last, of) - (getattr(base, of) or 0.0)) / (last.at - base.at)

    def base(self, window: float) -> Point:
        """The newest point at least `window` s before the latest one, else the oldest."""
        base = self.history[0]
        for point in self.history:
            if point.at > self.latest.at - window:
                break
            base = point
        return base

    def latency(self, q: float) -> float | None:
        """The q-quantile of event latency over about LATENCY_WINDOW s; None if none."""
        before = self.base(LATENCY_WINDOW).latency
        buckets = [(bound, count - before.get(bound, 0.0))
                   for bound, count in sorted(self.latest.latency.items())]
        return quantile(q, buckets)


class Health:
    """Every process's health; feed it with `heartbeat`, `status` and `snapshot`."""

    def __init__(self) -> None:
        self._processes: dict[str, ProcessHealth] = {}
        self._feeds: dict[int, dict[str, Feed]] = {}  # epoch -> provider -> its connection

    def heartbeat(self, beat: Heartbeat, now: float) -> None:
        previous = self._processes.get(beat.provider)
        if (previous is not None and beat.epoch < previous.epoch
                and now - previous.received_at < SUPERSEDED_AFTER):
            return  # an earlier life's (a replay)
        point = _point(beat.metrics, now)
        if previous is None or beat.epoch != previous.epoch:
            process = self._begin(beat, now, previous)
        else:
            process = previous
        if point.published > process.latest.published:
            process.last_event_at = now
        process.samples, process.received_at = beat.metrics, now
        process.history.append(point)
        while len(process.history) > 1 and process.history[1].at <= now - LATENCY_WINDOW:
            process.history.popleft()
        if beat.final:
            self.ended(beat.provider, now)

    def ended(self, name: str, now: float) -> None:
        """Process `name` stopped (its final heartbeat, or the supervisor saw it exit): its
        current life, and its connections, are over."""
        process = self._processes.get(name)
        if process is None or process.ended_at is not None:
            return
        process.ended_at = now
        for feed in self._feeds.get(process.epoch, {}).values():
            feed.stop(now)

    def status(self, status: Status, now: float) -> None:
        feeds = self._feeds.get(status.epoch)
        if feeds is None:
            feeds = self._feeds[status.epoch] = {}
            self._forget_a_stranger()
        if status.provider not in feeds:
            feeds[status.provider] = Feed(status.provider, since=status.ts_event / 1e9)
        feeds[status.provider].apply(status, now)

    def snapshot(self, provider: str, symbol: str, epoch: int) -> None:
        """A book snapshot of `symbol` came from that provider's handler: resynced."""
        feed = self._feeds.get(epoch, {}).get(provider)
        if feed is not None:
            feed.resyncing.discard(symbol)

    def _forget_a_stranger(self) -> None:
        """Past MAX_EPOCHS, the connections of the oldest epoch that is no process's."""
        if len(self._feeds) > MAX_EPOCHS:
            own = {process.epoch for process in self._processes.values()}
            newest = next(reversed(self._feeds))  # whose heartbeat may not have come yet
            stranger = next((epoch for epoch in self._feeds
                             if epoch not in own and epoch != newest), None)
            self._feeds.pop(stranger, None)

    def process(self, name: str) -> ProcessHealth | None:
        return self._processes.get(name)

    def feed(self, name: str) -> Feed | None:
        """The connection of process `name` (its most recently updated, if it has several)."""
        process = self._processes.get(name)
        feeds = self._feeds.get(process.epoch, {}) if process else {}
        return max(feeds.values(), key=lambda feed: feed.updated, default=None)

    def report(self, name: str, now: float) -> dict[str, Any] | None:
        """The `health` of process `name` in the supervisor's status; None before a heartbeat."""
        process = self._processes.get(name)
        if process is None:
            return None
        received = process.latest.received
        feed, quiet = self.feed(name), process.quiet(now)
        rates = _quiet_rates(received) if quiet else _rates(process)
        return {
            "heartbeat_age": round(now - process.received_at, 3),
            "events_published": int(process.latest.published),
            "events_per_second": rates["events_per_second"],
            "events_received": None if received is None else int(received),
            "events_received_per_second": rates["events_received_per_second"],
            "last_event_age": (None if process.last_event_at is None
                               else round(now - process.last_event_at, 3)),
            "gaps": int(process.value(GAPS)),
            "reconnects": int(process.value(["reconnects"])),
            "latency_p50": rates["latency_p50"],
            "latency_p99": rates["latency_p99"],
            "feed": feed.report(quiet) if feed else None,
        }

    def _begin(self, beat: Heartbeat, now: float, previous: ProcessHealth | None) -> ProcessHealth:
        """A process's new life: its counters were all 0 when it started, uptime ago."""
        if previous is not None:
            self._feeds.pop(previous.epoch, None)
        zero = Point(now - beat.metric("uptime_seconds"), 0.0, None, {})
        process = ProcessHealth(beat.epoch, beat.metrics, now, deque([zero]),
                                previous.last_event_at if previous else None)
        self._processes[beat.provider] = process
        if len(self._processes) > MAX_PROCESSES:
            silent = min(self._processes.values(), key=lambda known: known.received_at)
            self._processes = {name: known for name, known in self._processes.items()
                               if known is not silent}
        return process


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile (0 < q <= 1) of a histogram's cumulative (upper bound, count) buckets,
    ascending, +Inf last, interpolated linearly within its bucket (Prometheus'
    histogram_quantile); None if it counts nothing."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    lower, below = buckets[index - 1] if index else (0.0, 0.0)
    bound, count = buckets[index]
    if bound == float("inf"):
        return lower if index else None  # the highest finite bound, as Prometheus answers
    return lower + (bound - lower) * (rank - below) / (count - below)


def _point(samples: list[Sample], now: float) -> Point:
    published, received, latency = 0.0, None, {}
    for sample in samples:
        if sample.name == "events_published" and sample.labels.get("kind") not in NOT_EVENTS:
            published += sample.value
        elif sample.name in ("events_received", FORWARDED_IN):
            received = (received or 0.0) + sample.value
        elif sample.name == FORWARDED_OUT:
            published += sample.value
        elif sample.name == f"{EVENT_LATENCY}_bucket":
            latency[float(sample.labels["le"])] = sample.value
    return Point(now, published, received, latency)


def _rates(process: ProcessHealth) -> dict[str, float | None]:
    """A heartbeating process's recent rates and latency."""
    return {"events_per_second": _round(process.rate(RATE_WINDOW, "published"), 2),
            "events_received_per_second": _round(process.rate(RATE_WINDOW, "received"), 2),
            "latency_p50": _round(process.latency(0.5), 6),
            "latency_p99": _round(process.latency(0.99), 6)}


def _quiet_rates(received: float | None) -> dict[str, float | None]:
    """A stopped or silent process's: nothing flows, no latency is measured."""
    return {"events_per_second": 0.0,
            "events_received_per_second": None if received is None else 0.0,
            "latency_p50": None, "latency_p99": None}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
