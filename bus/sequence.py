"""What a subscriber checks of every message's (topic, epoch, sequence number), and the notices
it tells its reader: pure bookkeeping, no sockets, no clock of its own (time is passed in).

Rules, per topic (a publisher numbers each of its topics 1, 2, 3 ... under its epoch, the time
it started; bus.publisher):
 1. first message of a topic: delivered; the topic is tracked from there.
 2. same epoch, the next number: delivered.
 3. same epoch, a number skipped ahead: a `Gap` (the numbers in between were lost), told
    before the message that revealed it, which is delivered. A jump of more than MAX_GAP
    cannot be lost messages (no queue holds that many of one topic, and a publisher never
    renumbers a topic within its epoch): a forged or corrupt number, dropped and counted
    (`implausible`); the tracker stays where it was, so one such message cannot silence the
    topic's real messages as duplicates.
 4. same epoch, a number at or below the last one: a duplicate (a replay, a rogue copy):
    dropped and counted (`duplicates`), never delivered; the tracker does not move back.
 5. a newer epoch: the publisher restarted (`restarts`); delivered, tracked from there.
 6. an older epoch than the newest seen on the topic: a stale publisher (an old process, a
    replay of a recording): dropped and counted (`stale_epoch`), unless the reader asked for
    everything (`accept_stale`: a replay bus), when it is delivered like rule 5.
 7. at most `max_topics` topics are tracked: a message of a new topic beyond them is dropped
    and counted (`topics_refused`); or, for a reader that must keep every message (a
    recorder: `evict=True`), the topic heard of longest ago is forgotten to make room
    (`topics_evicted`: its next message is first seen again, rule 1). A publisher gone silent
    or stopped is forgotten with all its topics (`forget`), so its room is given back.

Publishers (by epoch), from their heartbeats (every tickmesh process sends one a second, and a
last one marked `final` when it stops on purpose):
 8. a final heartbeat: `PublisherStopped`, told at its place in the stream (after everything
    the publisher sent before it). A message of a stopped publisher that comes after it (a
    late copy on the other bus line: bus.lines) is a duplicate (rule 4); the last MAX_ENDED
    stopped publishers are remembered for this.
 9. no heartbeat for `timeout` seconds, while the reader is caught up (nothing more waiting on
    its socket: a reader that is behind has not read the heartbeats yet, and is not told a
    lie): `PublisherSilent`, told after everything read so far.
    Either is told only of a publisher whose messages the reader received (one of its topics
    is tracked); the publisher is then forgotten (rule 7), so a publisher that comes back is
    first seen again (rule 1), and one told silent is told again only after it is heard again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

MAX_GAP = 10_000_000
"""The most messages one gap may count. More than a subscriber's queue (the high-water mark,
sockets.DEFAULT_HWM) could ever lose on one topic at a time by orders of magnitude: a larger
jump is a forgery or a corrupt number, not lost messages (rule 3)."""
DEFAULT_MAX_TOPICS = 100_000
MAX_ENDED = 10_000  # publishers that said they stopped, remembered (rule 8)
DEFAULT_HEARTBEAT_TIMEOUT = 3.0


class Notice:
    """Something a reader is told at its place in the stream (not a message)."""


@dataclass(frozen=True)
class Gap(Notice):
    topic: bytes
    expected: int  # the sequence number that should have come
    received: int  # the one that came; received - expected messages were lost
    epoch: int = 0  # the publisher epoch of both

    @property
    def missed(self) -> int:
        return self.received - self.expected


@dataclass(frozen=True)
class PublisherStopped(Notice):
    """The publisher `epoch` (the process `name`) said it stopped: nothing more will come."""

    epoch: int
    name: str


@dataclass(frozen=True)
class PublisherSilent(Notice):
    """The publisher `epoch` (the process `name`) sent no heartbeat for `silent_for` seconds:
    hung or killed; what it published may be out of date."""

    epoch: int
    name: str
    silent_for: float


DELIVER = True
DROP = False


class SequenceTracker:
    """Rules 1-7: per-topic (epoch, last sequence number), bounded, with its counters."""

    def __init__(self, *, accept_stale: bool = False, max_topics: int = DEFAULT_MAX_TOPICS,
                 evict: bool = False, on_full: Callable[[], object] | None = None) -> None:
        self.accept_stale = accept_stale
        self.max_topics = max_topics
        self.evict = evict
        self.on_full = on_full  # called once, the first time max_topics is reached
        self.topics_evicted = 0
        self.gaps = self.missed = self.restarts = 0
        self.duplicates = self.stale_epoch = self.topics_refused = self.implausible = 0
        self._last: dict[bytes, list[int]] = {}  # topic -> [epoch, last seq]
        self._topics_of: dict[int, set[bytes]] = {}  # epoch -> its tracked topics
        self._ended: dict[int, None] = {}  # the epochs of publishers that said they stopped

    def check(self, topic: bytes, epoch: int, seq: int) -> bool | Gap:
        """DELIVER, DROP (a duplicate, a stale epoch, no room: counted), or the Gap this
        message reveals (deliver it after telling the gap)."""
        state = self._last.get(topic)
        if state is not None and epoch == state[0]:
            last = state[1]
            if seq == last + 1:
                state[1] = seq
                return DELIVER
            if seq <= last:
                self.duplicates += 1
                return DROP
            if seq - last - 1 > MAX_GAP:
                self.implausible += 1
                return DROP
            state[1] = seq
            gap = Gap(topic, last + 1, seq, epoch)
            self.gaps += 1
            self.missed += gap.missed
            return gap
        return self._other_epoch(topic, epoch, seq, state)

    def _other_epoch(self, topic: bytes, epoch: int, seq: int, state: list[int] | None) -> bool:
        if state is None:
            if epoch in self._ended:
                self.duplicates += 1
                return DROP
            if len(self._last) >= self.max_topics:
                if not (self.topics_refused or self.topics_evicted) and self.on_full:
                    self.on_full()
                if not self.evict:
                    self.topics_refused += 1
                    return DROP
                self._evict_oldest()
            self._last[topic] = [epoch, seq]
            self._topics_of.setdefault(epoch, set()).add(topic)
            return DELIVER
        if epoch < state[0] and not self.accept_stale:
            self.stale_epoch += 1
            return DROP
        self.restarts += 1
        self._move(topic, state[0], epoch)
        state[0], state[1] = epoch, seq
        return DELIVER

    def _move(self, topic: bytes, old: int, new: int) -> None:
        topics = self._topics_of.get(old)
        if topics is not None:
            topics.discard(topic)
            if not topics:
                del self._topics_of[old]
        self._topics_of.setdefault(new, set()).add(topic)

    def _evict_oldest(self) -> None:
        """Forget the topic first tracked (dicts keep their order of insertion)."""
        oldest = next(iter(self._last))
        epoch = self._last.pop(oldest)[0]
        topics = self._topics_of[epoch]
        topics.discard(oldest)
        if not topics:
            del self._topics_of[epoch]
        self.topics_evicted += 1

    def tracks(self, epoch: int) -> bool:
        """Whether a topic of the publisher `epoch` is tracked (its messages were delivered)."""
        return epoch in self._topics_of

    def forget(self, epoch: int, ended: bool = False) -> None:
        """Drop every topic of the publisher `epoch` (rule 7); `ended`: it said it stopped, so
        a message of its that comes after (a late copy on another bus line) is a duplicate."""
        for topic in self._topics_of.pop(epoch, ()):
            del self._last[topic]
        if ended:
            self._ended[epoch] = None
            if len(self._ended) > MAX_ENDED:
                del self._ended[next(iter(self._ended))]

    @property
    def positions(self) -> dict[bytes, list[int]]:
        """topic -> [epoch, last sequence number]: the tracker's own, to read, never change."""
        return self._last

    def position(self, topic: bytes) -> tuple[int, int] | None:
        """(epoch, last sequence number) seen on `topic`, or None."""
        state = self._last.get(topic)
        return (state[0], state[1]) if state is not None else None

    @property
    def topics(self) -> int:
        return len(self._last)


class PublisherWatch:
    """Rules 8-9: the publishers heard from, by epoch, and when each was last heard."""

    def __init__(self, timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> None:
        self.timeout = timeout
        self._heard: dict[int, tuple[str, float]] = {}  # epoch -> (process name, when)

    def heard(self, epoch: int, name: str, now: float) -> None:
        self._heard[epoch] = (name, now)

    def stopped(self, epoch: int, name: str) -> PublisherStopped:
        self._heard.pop(epoch, None)
        return PublisherStopped(epoch, name)

    def silent(self, now: float) -> list[PublisherSilent]:
        """The publishers not heard from for `timeout` s (each told once: then forgotten)."""
        late = [(epoch, name, now - when) for epoch, (name, when) in self._heard.items()
                if now - when >= self.timeout]
        for epoch, _name, _for in late:
            del self._heard[epoch]
        return [PublisherSilent(epoch, name, round(silent_for, 1))
                for epoch, name, silent_for in late]

    def __len__(self) -> int:
        return len(self._heard)
