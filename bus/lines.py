"""Two bus lines, one stream: A/B arbitration, as exchanges do it (pure: no sockets, time is
passed in).

With two lines every publisher sends each message through two forwarders (bus.publisher), and a
subscriber reads both (bus.stream): each message comes twice, once per line, in the order its
publisher sent it on each line, but the lines race each other. Per topic, the arbiter keeps the
first copy of each (epoch, sequence number) and drops the second; a number missing on one line
is a gap only when the other line cannot bring it either.

Rules, per topic, for a message of line L (the tracker, bus.sequence, holds the position
delivered so far: epoch, last sequence number):
 1. the next number (after the position; 1 for a topic not yet seen, or a newer epoch: a
    publisher numbers each topic from 1): passed on (the tracker's rules follow), and counted
    as delivered first by L (`first[L]`). An older epoch is passed on too: the tracker drops
    it (stale).
 2. a number below the next one: the copy of what the other line delivered first: dropped
    and counted (`duplicates`).
 3. a number beyond the next one while the other line is live (it delivered something within
    LINE_QUIET seconds): the message waits, with those L sends after it, for the other line,
    at most `hold` seconds. Each line keeps its publisher's order, so once a line has sent a
    number above a missing one, that line will never bring it. What waits is passed on, in
    order, as soon as it is next, or both lines have gone past what is missing (a gap on both:
    the tracker tells it; for a topic joined midway, no gap: it is first seen there), or its
    time is up (`expire`), or the topic's publisher stopped (`release_epoch`): nothing waits
    for ever, and at most MAX_HELD messages per topic.
 4. the same beyond the next while the other line is quiet (down): passed on; the gap is real.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tickmesh.bus.sequence import SequenceTracker

LINE_HOLD = 0.5
"""Seconds a message that reveals a gap on one line waits for the other line to fill it."""
LINE_QUIET = 2.0
"""A line that delivered nothing for this long is down: no message waits for it (every
process sends a heartbeat a second on every line, so a live line is never this quiet)."""
MAX_HELD = 100_000
"""Messages one topic may hold while it waits (beyond: what waits is passed on at once)."""

PASS = True
DROP = False


@dataclass
class _Waiting:
    """A topic whose next message is missing on one line: what waits for the other."""

    epoch: int
    expected: int  # the next sequence number to pass on
    deadline: float
    held: dict[int, tuple[int, Any]] = field(default_factory=dict)  # seq -> (line, item)
    seen: list[int] = field(default_factory=lambda: [0, 0])  # each line's highest seq since


class Arbiter:
    """Rules 1-4 for one subscriber on two lines (0 and 1). `offer` answers PASS, DROP, or
    the list of items to pass on now, in order (empty: it waits); `expire` and
    `release_epoch` give back what waited."""

    def __init__(self, tracker: SequenceTracker, hold: float = LINE_HOLD) -> None:
        self.hold = hold
        self.first = [0, 0]  # messages delivered first by each line
        self.duplicates = 0  # second copies dropped
        self.heard = [float("-inf"), float("-inf")]  # when each line last delivered anything
        self._positions = tracker.positions  # topic -> [epoch, last seq] delivered (read only)
        self._waiting: dict[bytes, _Waiting] = {}

    def offer(self, line: int, topic: bytes, epoch: int, seq: int, item: Any,
              now: float) -> bool | list[Any]:
        """What to do with `item`, the message (epoch, seq) of `topic` from `line`."""
        if self._waiting and topic in self._waiting:
            return self._while_waiting(self._waiting[topic], line, topic, epoch, seq, item, now)
        state = self._positions.get(topic)
        if state is not None and epoch == state[0]:  # the common case first: two copies in turn
            if seq == state[1] + 1:
                self.first[line] += 1
                return PASS
            if seq <= state[1]:
                self.duplicates += 1
                return DROP
            expected = state[1] + 1
        elif state is None or epoch > state[0]:
            expected = 1  # a new topic, or its publisher restarted: it numbers from 1
            if seq == 1:
                self.first[line] += 1
                return PASS
        else:
            return PASS  # a stale publisher: the tracker's to drop
        if now - self.heard[1 - line] >= LINE_QUIET:
            self.first[line] += 1
            return PASS  # rule 4: the other line is down
        waiting = self._waiting[topic] = _Waiting(epoch, expected, now + self.hold)
        waiting.held[seq] = (line, item)
        waiting.seen[line] = seq
        return []

    def _while_waiting(self, waiting: _Waiting, line: int, topic: bytes, epoch: int, seq: int,
                       item: Any, now: float) -> bool | list[Any]:
        if epoch != waiting.epoch:  # the publisher restarted (or a stale one): stop waiting
            released = self._release(topic)
            verdict = self.offer(line, topic, epoch, seq, item, now)
            return released + ([item] if verdict is PASS else verdict or [])
        waiting.seen[line] = max(waiting.seen[line], seq)  # this line has gone this far
        copy = seq < waiting.expected or seq in waiting.held
        if copy:
            self.duplicates += 1
        else:
            waiting.held[seq] = (line, item)
        released = self._ready(waiting)
        if copy and not released:
            return DROP
        if not waiting.held:
            del self._waiting[topic]
        elif len(waiting.held) > MAX_HELD:
            released += self._release(topic)
        return released

    def _ready(self, waiting: _Waiting) -> list[Any]:
        """Take out what may pass now: the next number, or one both lines have gone past."""
        out = []
        passed_by_both = min(waiting.seen)
        for seq in sorted(waiting.held):
            if seq != waiting.expected and seq > passed_by_both:
                break
            out.append(self._passed(waiting.held.pop(seq)))
            waiting.expected = seq + 1
        return out

    def _passed(self, held: tuple[int, Any]) -> Any:
        line, item = held
        self.first[line] += 1
        return item

    def _release(self, topic: bytes) -> list[Any]:
        """Everything `topic` holds, in order (its wait is over)."""
        waiting = self._waiting.pop(topic)
        return [self._passed(waiting.held[seq]) for seq in sorted(waiting.held)]

    def expire(self, now: float) -> list[tuple[bytes, list[Any]]]:
        """The topics whose time to wait is up, with what they held, in order."""
        late = [topic for topic, waiting in self._waiting.items() if waiting.deadline <= now]
        return [(topic, self._release(topic)) for topic in late]

    def release_epoch(self, epoch: int) -> list[tuple[bytes, list[Any]]]:
        """The topics of the publisher `epoch` (it stopped), with what they held, in order."""
        topics = [topic for topic, waiting in self._waiting.items() if waiting.epoch == epoch]
        return [(topic, self._release(topic)) for topic in topics]

    def next_deadline(self) -> float | None:
        """When the first wait ends (None: nothing waits)."""
        return min((waiting.deadline for waiting in self._waiting.values()), default=None)

    @property
    def waiting(self) -> int:
        """Topics waiting for the other line now."""
        return len(self._waiting)
