"""One message in: what a subscriber does with each message it reads, before its reader sees it
(bus.sequence has the rules it follows).

With two bus lines (`accept_from`), each message is first arbitrated (bus.lines: the second
copy dropped, a message that reveals a gap on one line held for the other), and only what
passes goes on as follows. A heartbeat notes its publisher alive (rule 8: or stopped, its
final one), and is delivered only if a pattern asks for it. Any other message is filtered (what a prefix subscription could
not: bus.topics.Selection), converted (bus.messages) and tracked (rules 1-7). `accept` answers
the message to deliver now, None (not wanted, malformed or dropped), or HELD: something must be
told first (a gap, a publisher stopped) or fetched (a fill request), and `pending` now holds
it, in stream order, followed by the message. While the reader is caught up, `caught_up`
looks for publishers gone silent (rule 9), now and then, and queues what it finds in
`pending`; and, in the first NO_SYSTEM_AFTER seconds, for any sign of a system at the
endpoint: a subscriber that heard no heartbeat and received nothing in that time logs, once,
that no system seems to be there (every running system has a forwarder and a supervisor that
send a heartbeat every second).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

from tickmesh.bus.lines import DROP, LINE_HOLD, PASS, Arbiter
from tickmesh.bus.messages import Item, Malformed, beat, convert, stamp
from tickmesh.bus.sequence import Gap, PublisherWatch, SequenceTracker
from tickmesh.bus.topics import Selection

HEARTBEATS = b"heartbeat."
CHECK_EVERY = 0.25  # seconds between two looks for silent publishers, while caught up
NO_SYSTEM_AFTER = 5.0  # seconds without a heartbeat or a message: no system seems to be there
HELD = object()  # `accept`'s answer when the message waits in `pending` behind a notice
_log = logging.getLogger("tickmesh.bus")


@dataclass(frozen=True)
class FillRequest:
    """In the pending stream: ask the recorder for `gap` before delivering what follows."""

    gap: Gap


class Intake:
    """The checks of one subscriber; `pending` is its stream of what waits to be told or
    delivered, in order: notices (bus.sequence.Notice), fill requests and messages."""

    def __init__(self, endpoint: str, selection: Selection, raw: bool, tracker: SequenceTracker,
                 watch: PublisherWatch | None, fill: bool, lines: int = 1,
                 line_hold: float = LINE_HOLD) -> None:
        self.endpoint = endpoint
        self.arbiter = Arbiter(tracker, line_hold) if lines > 1 else None
        self.now = 0.0  # with two lines: the time of the read under way (the stream sets it)
        self._heard = self.arbiter.heard if self.arbiter is not None else []
        self.raw = raw
        self.tracker = tracker
        self.watch = watch
        self.received = 0
        self.malformed = 0  # dropped: bus.messages.Malformed, or a message of one frame
        self.pending: deque = deque()
        self._fill = fill
        self._selection = selection
        self._filters = selection.filters
        self._next_check = 0.0
        # until when to look for a sign of a system (None: seen, or told none is there)
        self._quiet_until = time.monotonic() + NO_SYSTEM_AFTER if watch is not None else None
        tracker.on_full = self._full

    def accept(self, topic: bytes, payload: bytes) -> Item | object | None:
        """The message to deliver; None: not wanted, malformed or dropped; HELD: it waits in
        `pending` behind a notice."""
        if topic[:10] == HEARTBEATS and self.watch is not None:
            return self._heartbeat(topic, payload)
        if self._filters and not self._selection.wants(topic):
            return None
        try:
            message = convert(topic, payload, self.raw)
        except Malformed as exc:
            self.malformed += 1
            if exc.message is None:
                return None
            message = exc.message
        return self._track(topic, message)

    def accept_from(self, line: int, topic: bytes, payload: bytes) -> Item | object | None:
        """`accept` for a message read from bus line `line` of two (bus.lines arbitrates), at
        `now` (set by the reader once a read)."""
        self._heard[line] = self.now
        if topic[:10] == HEARTBEATS and self.watch is not None:
            return self._heartbeat(topic, payload, line)
        if self._filters and not self._selection.wants(topic):
            return None
        return self._arbitrate(line, topic, payload)

    def _arbitrate(self, line: int, topic: bytes, payload: bytes) -> Item | object | None:
        """Rules 1-4 of bus.lines, then, for what passes, rules 1-7 of bus.sequence."""
        epoch, seq = stamp(payload)
        if not (epoch or seq):  # unstamped or malformed: never arbitrated
            message = self.convert(topic, payload)
            return self._track(topic, message) if message is not None else None
        verdict = self.arbiter.offer(line, topic, epoch, seq, payload, self.now)
        if verdict is PASS:
            message = self.convert(topic, payload)
            return self._track(topic, message) if message is not None else None
        if verdict is DROP:
            return None
        self._pass_on(topic, verdict)
        return HELD if self.pending else None

    def _pass_on(self, topic: bytes, payloads: list[bytes]) -> None:
        """What a topic held for the other line, in order, into `pending` (rules 1-7 first)."""
        for payload in payloads:
            message = self.convert(topic, payload)
            out = self._track(topic, message) if message is not None else None
            if out is not None and out is not HELD:
                self.pending.append(out)

    def convert(self, topic: bytes, payload: bytes) -> Item | None:
        """The message to deliver of `payload`, or None: malformed (counted)."""
        try:
            return convert(topic, payload, self.raw)
        except Malformed as exc:
            self.malformed += 1
            return exc.message

    def _track(self, topic: bytes, message: Item) -> Item | object | None:
        """Rules 1-7 for one converted message."""
        if not (message.epoch or message.seq):
            self.received += 1  # unstamped: not tracked
            return message
        verdict = self.tracker.check(topic, message.epoch, message.seq)
        if verdict is True:
            self.received += 1
            return message
        if verdict is False:
            return None
        self.received += 1
        self.pending.append(FillRequest(verdict) if self._fill else verdict)
        self.pending.append(message)
        return HELD

    def _heartbeat(self, topic: bytes, payload: bytes, line: int | None = None) -> Item | object | None:
        """Note its publisher alive, or stopped (rules 8-9); deliver it if it was asked for.
        `line`: the bus line it came from, with two."""
        out = None
        if self._selection.selects(topic):
            if line is not None:
                out = self._arbitrate(line, topic, payload)
            else:
                message = self.convert(topic, payload)
                out = self._track(topic, message) if message is not None else None
        heard = beat(payload)
        if heard is None or not heard.e:
            return out
        self._quiet_until = None
        if not heard.fin:
            self.watch.heard(heard.e, heard.p, time.monotonic())
            return out
        stopped = self.watch.stopped(heard.e, heard.p)
        if not self.tracker.tracks(heard.e):
            return out
        if out is not None and out is not HELD:
            self.pending.append(out)
        if self.arbiter is not None:  # what waits for the other line is told before the stop
            for held_topic, payloads in self.arbiter.release_epoch(heard.e):
                self._pass_on(held_topic, payloads)
        self.tracker.forget(heard.e, ended=True)
        self.pending.append(stopped)
        return HELD

    def caught_up(self) -> None:
        """Nothing more is waiting: pass on what waited for the other bus line in vain
        (bus.lines, rule 3); look for publishers gone silent (rule 9), and for a sign of a
        system, now and then."""
        self.end_waits()
        if self.watch is None or not (len(self.watch) or self._quiet_until):
            return
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_EVERY
        if self._quiet_until:
            self._look_for_a_system(now)
        for notice in self.watch.silent(now):
            if self.tracker.tracks(notice.epoch):
                self.tracker.forget(notice.epoch)
                self.pending.append(notice)

    def end_waits(self, now: float | None = None) -> None:
        """Pass on, into `pending`, what waited for the other bus line past its time (at
        `now`, default the monotonic clock's)."""
        if self.arbiter is not None and self.arbiter.waiting:
            for topic, payloads in self.arbiter.expire(now or time.monotonic()):
                self._pass_on(topic, payloads)

    def _look_for_a_system(self, now: float) -> None:
        if self.received:
            self._quiet_until = None
        elif now >= self._quiet_until:
            self._quiet_until = None
            _log.warning("no system seems to be at %s: nothing heard there in %g s (every "
                         "running system's forwarder and supervisor send a heartbeat every "
                         "second; `tickmesh endpoints` prints the running system's)",
                         self.endpoint, NO_SYSTEM_AFTER)

    def next_look(self, now: float) -> float | None:
        """Seconds until `caught_up` next looks (None: it has nothing to look for)."""
        looks = []
        if self.arbiter is not None and (deadline := self.arbiter.next_deadline()) is not None:
            looks.append(max(deadline, now + 0.001) - now)
        if self.watch is not None and (len(self.watch) or self._quiet_until):
            looks.append(max(self._next_check, now + 0.01) - now)
        return min(looks, default=None)

    def _full(self) -> None:
        what = "the topic tracked longest ago is forgotten for each new one " \
            "(tracker.topics_evicted)" if self.tracker.evict else \
            "messages of further topics are dropped (tracker.topics_refused)"
        _log.warning("subscriber tracks %d topics, its max_topics: %s", self.tracker.max_topics,
                     what)
