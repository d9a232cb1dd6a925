"""A/B arbitration (bus.lines) as a subscriber's intake does it: whatever each line loses and
however the two lines race, the reader gets every message that either line delivered, exactly
once, in its publisher's order, and is told a gap only for what neither line delivered."""

from __future__ import annotations

import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tickmesh.bus import events
from tickmesh.bus.intake import HELD, Intake
from tickmesh.bus.sequence import Gap, PublisherWatch, SequenceTracker
from tickmesh.bus.topics import Selection, topic

EPOCH = 1_700_000_000_000_000_000
SYMBOLS = ("AAA", "BBB", "CCC")
PRIME = "ZZZ"  # each line first delivers a message of its own topic: both lines are live


def payload(symbol: str, seq: int, epoch: int = EPOCH) -> tuple[bytes, bytes]:
    trade = events.Trade(provider="p", symbol=symbol, ts_event=1, ts_recv=1, price=1.0,
                         size=float(seq), seq=seq, epoch=epoch)
    return topic("trade", "p", symbol), events.encode(trade)


def two_line_intake(hold: float = 3600.0) -> Intake:
    """An intake on two lines whose waits end only when the test says (a long hold)."""
    return Intake("tcp://a", Selection(["*"]), False, SequenceTracker(), None, False,
                  lines=2, line_hold=hold)


class Reader:
    """What a reader of the intake gets: events and notices, in order."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.items: list = []

    def offer(self, line: int, symbol: str, seq: int, epoch: int = EPOCH) -> None:
        self.intake.now = time.monotonic()  # as a reader's stream sets it, once a read
        out = self.intake.accept_from(line, *payload(symbol, seq, epoch))
        if out is HELD or out is None:
            self.take_pending()
        else:
            self.items.append(out)

    def take_pending(self) -> None:
        while self.intake.pending:
            self.items.append(self.intake.pending.popleft())

    def finish(self) -> None:
        self.intake.end_waits(now=math.inf)
        self.take_pending()

    def delivered(self, symbol: str) -> list[int]:
        return [item.seq for item in self.items
                if isinstance(item, events.Trade) and item.symbol == symbol]

    def gaps(self, symbol: str) -> list[Gap]:
        return [item for item in self.items if isinstance(item, Gap)
                and item.topic == topic("trade", "p", symbol)]


@st.composite
def two_lines(draw) -> tuple[list[tuple[str, int]], list[tuple[int, str, int]]]:
    """A publisher's messages over SYMBOLS, what each line kept of them, and the order in which
    the two lines' copies arrive (each line keeps its publisher's order)."""
    counts = {symbol: draw(st.integers(1, 12)) for symbol in SYMBOLS}
    sent = [(symbol, seq) for symbol in SYMBOLS for seq in range(1, counts[symbol] + 1)]
    sent = draw(st.permutations(sent).map(lambda order: sorted(
        order, key=lambda message: (message[1], order.index(message)))))
    kept = [[message for message in sent if draw(st.booleans()) or draw(st.booleans())]
            for _line in (0, 1)]
    arrivals, heads = [], [0, 0]
    while heads[0] < len(kept[0]) or heads[1] < len(kept[1]):
        line = draw(st.sampled_from([n for n in (0, 1) if heads[n] < len(kept[n])]))
        arrivals.append((line, *kept[line][heads[line]]))
        heads[line] += 1
    return sent, arrivals


@settings(max_examples=300)
@given(two_lines())
def test_every_message_either_line_delivered_is_read_once_in_order(case) -> None:
    sent, arrivals = case
    reader = Reader(two_line_intake())
    reader.offer(0, PRIME, 1)
    reader.offer(1, PRIME, 1)
    for line, symbol, seq in arrivals:
        reader.offer(line, symbol, seq)
    for symbol in SYMBOLS:  # nothing waits for what both lines have gone past
        last_on = [max((seq for ln, sym, seq in arrivals if ln == line and sym == symbol),
                       default=0) for line in (0, 1)]
        by_either = {seq for _line, sym, seq in arrivals if sym == symbol}
        assert {seq for seq in by_either if seq <= min(last_on)} <= set(reader.delivered(symbol))
    reader.finish()
    for symbol in SYMBOLS:
        by_either = sorted({seq for _line, sym, seq in arrivals if sym == symbol})
        delivered = reader.delivered(symbol)
        assert delivered == by_either  # each once, in order, nothing either line had is lost
        told_missing = {seq for gap in reader.gaps(symbol)
                        for seq in range(gap.expected, gap.received)}
        if delivered:
            between = set(range(delivered[0], delivered[-1] + 1)) - set(delivered)
            assert told_missing == between  # a gap exactly where neither line delivered
    arbiter = reader.intake.arbiter
    delivered = sum(len(reader.delivered(symbol)) for symbol in SYMBOLS)
    assert sum(arbiter.first) == delivered + 1  # (and the priming message, once)
    assert arbiter.duplicates == len(arrivals) - delivered + 1


def test_a_line_gone_quiet_is_not_waited_for() -> None:
    """Line B delivered nothing for LINE_QUIET: a gap on line A is told at once."""
    reader = Reader(two_line_intake())
    reader.offer(0, "AAA", 1)
    reader.offer(0, "AAA", 3)
    assert reader.delivered("AAA") == [1, 3]
    assert [(gap.expected, gap.received) for gap in reader.gaps("AAA")] == [(2, 3)]


def test_what_waits_in_vain_is_passed_on_when_its_time_is_up() -> None:
    reader = Reader(two_line_intake(hold=0.0))
    reader.offer(1, PRIME, 1)
    reader.offer(0, "AAA", 1)
    reader.offer(0, "AAA", 3)  # line B is live: 3 waits for B's 2
    assert reader.delivered("AAA") == [1]
    reader.intake.end_waits()
    reader.take_pending()
    assert reader.delivered("AAA") == [1, 3]
    assert [(gap.expected, gap.received) for gap in reader.gaps("AAA")] == [(2, 3)]


def test_a_stopped_publisher_s_late_copies_are_duplicates() -> None:
    """Line A brings a publisher's last message and its final heartbeat; line B's late copy of
    that message must not be read again as a new topic's first message."""
    intake = Intake("tcp://a", Selection(["*"]), False, SequenceTracker(), PublisherWatch(3.0),
                    False, lines=2, line_hold=3600.0)
    reader = Reader(intake)
    reader.offer(0, "AAA", 1)
    final = events.Heartbeat(provider="pub", ts_event=1, ts_recv=1, pid=1, final=True,
                             seq=1, epoch=EPOCH)
    intake.accept_from(0, topic("heartbeat", "pub"), events.encode(final))
    reader.take_pending()
    reader.offer(1, "AAA", 1)
    assert reader.delivered("AAA") == [1]
    assert intake.tracker.duplicates + intake.arbiter.duplicates == 1
