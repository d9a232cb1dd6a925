"""Issue 18's acceptance: a Kraken stream of over 1,000 book updates on three pairs at depth
1000 (tests/kraken_stream.py: made independently of the handler and the simulator, each `c`
by its own reading of Kraken's checksum), replayed through the simulator, the handler and
the order-book builder, each a real process on real sockets:

- as recorded: 0 checksum mismatches, every state of every book the bus shows is the
  recording's state after the same update, and the builder's books are the recording's;
- with one update lost on the way (the simulator's `lose`): the mismatch is found at the very
  next update of that pair, nothing after the loss is published until the resubscribe's new
  snapshot (every state the bus ever showed is one the venue's book had), the other pairs never
  stop, and the book is live and equal to the recording's at the end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tickmesh.bus import BookDelta, BookSnapshot, Status
from tickmesh.consumers.books.snapshots import format_table
from tests import simulators
from tests.books import apply_levels
from tests.buslog import BusLog
from tests.kraken_stream import Recording, digest, record
from tests.simcontrol import control
from tests.test_books_e2e import (
    as_book, ask, book_statuses, start_builder, start_forwarder, subscribed,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(90)
SIM = "tickmesh.handlers.kraken.sim.server"
SYMBOLS = ["BTC-USD", "ETH-USD", "DOGE-USD"]
PATTERNS = ["book_snapshot.kraken", "book_delta.kraken", "status.kraken", "book_status.kraken",
            "heartbeat.kraken"]
SOME_UPDATES = 150  # of BTC-USD's, delivered before the one lost (at least)


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Recording:
    made = record(tmp_path_factory.mktemp("kraken") / "kraken.jsonl")
    assert sum(made.updates.values()) >= 1000
    return made


def visible_loss(recording: Recording, symbol: str) -> int:
    """How many of the symbol's updates to deliver before the one to lose: at least
    SOME_UPDATES, and the lost one must change the top 10 (Kraken's checksum covers no more:
    a loss deeper in the book shows only once its levels reach the top 10)."""
    sums = recording.checksums[symbol]
    return next(k for k in range(SOME_UPDATES, len(sums) - 1) if sums[k] != sums[k - 1])


def bus_states(log: BusLog, symbol: str) -> list[int]:
    """The digest of the symbol's book after each of its snapshots and deltas on the bus."""
    book: tuple[dict, dict] | None = None
    states = []
    for event in log.events:
        if isinstance(event, BookSnapshot | BookDelta) and event.symbol == symbol:
            if isinstance(event, BookSnapshot):
                book = (dict(event.bids), dict(event.asks))
            else:
                apply_levels(book, event.bids, event.asks)
            states.append(digest(book))
    return states


def is_subsequence(states: list[int], truth: list[int]) -> bool:
    """Every state in `states` is one of `truth`'s, in the same order (each at or after the
    one before)."""
    position = 0
    for state in states:
        try:
            position = truth.index(state, position)
        except ValueError:
            return False
    return True


def builder_books(log: BusLog, endpoint: str, recording: Recording) -> dict | None:
    """The builder's books, once all are live and the recording's (the bus read meanwhile)."""
    log.read()
    answers = {symbol: ask(endpoint, "kraken", symbol) for symbol in SYMBOLS}
    same = all(a.get("state") == "live" and as_book(a) == recording.books[s]
               for s, a in answers.items())
    return answers if same else None


@pytest.fixture
def replay(spawn_child, start_handler, run_dir: Path):
    """replay(recording, speed, lose=None) -> (builder endpoint, bus log): a forwarder, the
    simulator replaying the recording (its settings list only BTC-USD: it serves the pairs of
    the file), the builder, a log of the bus and the handler, the log closed at teardown."""
    logs: list[BusLog] = []

    def _replay(recording: Recording, speed: float, lose: int | None = None
                ) -> tuple[str, BusLog]:
        bus = start_forwarder(spawn_child, run_dir)
        endpoint = f"ipc://{run_dir}/books"
        port, _ = simulators.start(spawn_child, SIM, "kraken-sim", None, {
            "symbols": ["BTC-USD"], "replay": str(recording.path), "speed": speed})
        start_builder(spawn_child, bus, endpoint, "kraken")
        logs.append(BusLog(bus.subscribe, PATTERNS))
        subscribed(bus, endpoint, "kraken", logs[-1])
        if lose is not None:
            control(port, "lose", pair="XBT/USD", after=lose)
        start_handler("kraken", port, bus=bus, symbols=SYMBOLS, depth=1000, stale_after=0)
        return endpoint, logs[-1]

    yield _replay
    for log in logs:
        log.close()


def test_a_recorded_stream_replays_with_no_mismatch_into_the_recordings_books(
        replay, recording):
    endpoint, log = replay(recording, speed=0)
    answers = wait_until(lambda: builder_books(log, endpoint, recording), timeout=40,
                         what="the builder's books equal to the recording's", interval=0.2)
    log.until(lambda _: log.heartbeat("kraken") and all(
        len([e for e in log.of(BookDelta) if e.symbol == s]) == recording.updates[s]
        for s in SYMBOLS), what="every update published")
    assert log.metric("kraken", "checksum_mismatches") == 0
    assert not [s for s in log.of(Status) if s.state == "resyncing"]
    for symbol in SYMBOLS:
        assert bus_states(log, symbol) == recording.states[symbol]
        assert answers[symbol]["checksum"] == "kraken-crc32"
        assert len(answers[symbol]["bids"]) == len(answers[symbol]["asks"]) == 1000
    assert "every update verified by the venue's checksum (kraken-crc32)" in format_table(
        answers["BTC-USD"])


def test_a_lost_update_is_caught_at_the_next_checksum_and_the_book_never_lies(
        replay, recording):
    lost_after = visible_loss(recording, "BTC-USD")
    endpoint, log = replay(recording, speed=1.0, lose=lost_after)
    wait_until(lambda: builder_books(log, endpoint, recording), timeout=40,
               what="the builder's books equal to the recording's again", interval=0.2)
    log.until(lambda _: log.metric("kraken", "checksum_mismatches") == 1
              and log.metric("kraken", "resyncs", reason="checksum") == 1,
              what="the mismatch counted")
    said = [(s.state, s.symbol, s.message) for s in log.of(Status) if s.symbol]
    assert said == [("resyncing", "BTC-USD", "checksum mismatch")]
    # caught at the next update: the updates before the lost one, and nothing more, came first
    resync = next(i for i, e in enumerate(log.events) if isinstance(e, Status) and e.symbol)
    before = [e for e in log.events[:resync] if isinstance(e, BookDelta) and e.symbol == "BTC-USD"]
    assert len(before) == lost_after
    # every state of the book the bus showed was one the venue's book had, in order
    shown = bus_states(log, "BTC-USD")
    assert is_subsequence(shown, recording.states["BTC-USD"])
    assert shown[-1] == recording.states["BTC-USD"][-1]
    assert [s.generation for s in log.of(BookSnapshot) if s.symbol == "BTC-USD"] == [1, 2]
    assert [d.generation for d in log.of(BookDelta) if d.symbol == "BTC-USD"][-1] == 2  # the
    # stream went on after the resubscribe, its deltas verified again
    for symbol in ("ETH-USD", "DOGE-USD"):  # never stopped
        assert bus_states(log, symbol) == recording.states[symbol]
    states = [state for state, _ in book_statuses(log, "BTC-USD")]
    assert states == ["live", "resyncing", "live"]
    assert [state for state, _ in book_statuses(log, "ETH-USD")] == ["live"]
