"""One book's state machine alone (consumers.books.state), without processes: every transition,
the resync requests and their backoff, and that a crossed book is never given out as applied."""

import pytest

from tickmesh.bus.events import BookDelta, BookSnapshot
from tickmesh.consumers.books.state import Actions, BookMachine, Timing

TIMING = Timing(resync_timeout=2.0, resync_max=30.0)
EPOCH = 1000


def snapshot(bids=((100.0, 1.0),), asks=((101.0, 1.0),), generation=1, epoch=EPOCH):
    return BookSnapshot(provider="p", symbol="S", ts_event=1, ts_recv=1, bids=list(bids),
                        asks=list(asks), generation=generation, epoch=epoch, seq=generation)


def delta(bids=(), asks=(), generation=1, epoch=EPOCH, seq=1):
    return BookDelta(provider="p", symbol="S", ts_event=2, ts_recv=2, bids=list(bids),
                     asks=list(asks), generation=generation, epoch=epoch, seq=seq)


def machine(rng=lambda: 1.0) -> BookMachine:
    return BookMachine(TIMING, rng)


def live(rng=lambda: 1.0) -> BookMachine:
    m = machine(rng)
    assert m.snapshot(snapshot(), now=0.0) == Actions(("live", ""), applied=True)
    return m


def test_a_new_book_is_stale_and_empty_until_its_snapshot():
    m = machine()
    assert (m.state, m.book.top()) == ("stale", ([], []))
    assert m.tick(1000.0) == Actions()  # nothing asked, nothing to ask again


def test_deltas_of_the_books_generation_are_applied_while_live():
    m = live()
    out = m.delta(delta(bids=[(100.5, 2.0)], seq=2), now=1.0)
    assert out == Actions(applied=True)
    assert m.book.best_bid() == (100.5, 2.0) and m.last.seq == 2


def test_a_delta_of_a_newer_generation_means_a_missed_snapshot():
    m = live()
    out = m.delta(delta(bids=[(100.5, 2.0)], generation=2), now=1.0)
    assert out.status == ("stale", "missed the snapshot of generation 2")
    assert out.resync == "missed_snapshot" and not out.applied
    assert m.book.best_bid() == (100.0, 1.0)  # not applied
    assert m.delta(delta(generation=2, seq=3), now=1.1) == Actions(ignored="not_live")
    assert m.snapshot(snapshot(generation=3), now=1.2).status == ("live", "")


def test_a_publisher_restart_is_a_newer_version_too():
    m = live()
    out = m.delta(delta(generation=1, epoch=EPOCH + 1), now=1.0)
    assert out.status[0] == "stale" and out.resync == "missed_snapshot"


def test_deltas_of_an_older_generation_are_ignored():
    m = machine()
    m.snapshot(snapshot(generation=5), now=0.0)
    assert m.delta(delta(bids=[(1.0, 1.0)], generation=4), now=1.0) == Actions(
        ignored="old_generation")
    assert m.book.best_bid() == (100.0, 1.0)


def test_a_bus_gap_makes_the_book_stale_and_asks_once():
    m = live()
    out = m.gap(7, now=1.0)
    assert out == Actions(("stale", "bus gap: 7 messages lost"), resync="gap")
    again = m.gap(3, now=1.1)
    assert again.status == ("stale", "bus gap: 3 messages lost") and again.resync == ""
    assert m.delta(delta(), now=1.2) == Actions(ignored="not_live")
    assert m.snapshot(snapshot(generation=2), now=1.3).status == ("live", "")


def test_a_lost_answer_is_asked_again_at_once_when_a_newer_generation_shows():
    m = live()
    assert m.gap(1, now=1.0).resync == "gap"
    # the answer (snapshot 2) was lost too; its deltas show it:
    assert m.delta(delta(generation=2), now=1.1).resync == "missed_snapshot"
    assert m.delta(delta(generation=2, seq=2), now=1.2) == Actions(ignored="not_live")


def test_the_handlers_resyncing_waits_for_its_snapshot_without_asking():
    m = live()
    assert m.resyncing(now=1.0) == Actions(("resyncing", "the handler is rebuilding the book"))
    assert m.delta(delta(), now=1.5) == Actions(ignored="not_live")
    assert m.tick(1.0 + 2 * TIMING.resync_timeout - 0.01) == Actions()
    late = m.tick(1.0 + 2 * TIMING.resync_timeout)
    assert late.resync == "timeout" and late.status[0] == "resyncing"
    assert "asked again (retry 1" in late.status[1]
    assert m.snapshot(snapshot(generation=2), now=6.0).status == ("live", "")


def test_a_disconnected_provider_makes_its_books_stale_and_its_return_asks_soon():
    m = live()
    assert m.disconnected(now=1.0) == Actions(("stale", "the provider is disconnected"))
    for now in (5.0, 13.0, 29.0):  # the provider stays away: asked again, less and less often
        assert m.tick(now).resync == "timeout"
    assert m.retry_at > 29.0 + TIMING.resync_timeout
    assert m.provider_up(now=30.0) == Actions()
    assert m.retry_at == 30.0 + TIMING.resync_timeout and m.attempt == 0
    assert m.tick(32.0).resync == "timeout"


def test_a_provider_back_does_not_touch_a_live_book():
    m = live()
    m.provider_up(now=1.0)
    assert m.retry_at is None and m.tick(100.0) == Actions()


def test_a_delta_that_crosses_the_book_is_not_applied_as_truth_and_asks_at_once():
    m = live()
    out = m.delta(delta(bids=[(101.5, 1.0)]), now=1.0)
    assert out == Actions(("crossed", "crossed after a delta: bid 101.5 >= ask 101"),
                         resync="crossed")
    assert not out.applied and m.state == "crossed"
    assert m.delta(delta(bids=[(101.5, 0.0)]), now=1.1) == Actions(ignored="not_live")


def test_a_locked_book_is_crossed_too():
    m = live()
    out = m.delta(delta(asks=[(100.0, 1.0)]), now=1.0)
    assert out.status == ("crossed", "locked after a delta: bid 100 >= ask 100")


def test_a_crossed_snapshot_asks_again_only_after_the_backoff():
    m = machine(rng=lambda: 0.0)
    out = m.snapshot(snapshot(bids=[(102.0, 1.0)]), now=0.0)
    assert out == Actions(("crossed", "crossed snapshot: bid 102 >= ask 101"))
    assert m.tick(TIMING.resync_timeout - 0.01) == Actions()
    assert m.tick(TIMING.resync_timeout).resync == "timeout"
    again = m.snapshot(snapshot(bids=[(102.0, 1.0)], generation=2), now=2.5)
    assert again.resync == "" and not again.applied
    assert m.retry_at == 2.5 + 4 * TIMING.resync_timeout  # the backoff kept growing
    assert m.snapshot(snapshot(generation=3), now=3.0) == Actions(("live", ""), applied=True)
    assert m.attempt == 0 and m.retry_at is None


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_resyncs_that_keep_failing_are_asked_again_with_a_growing_capped_jittered_wait(jitter):
    m = live(rng=lambda: jitter)
    assert m.gap(1, now=0.0).resync == "gap"
    waits, now = [], 0.0
    for _ in range(8):
        wait = m.retry_at - now
        waits.append(wait)
        now = m.retry_at
        assert m.tick(now - 1e-6) == Actions()
        assert m.tick(now).resync == "timeout"
    ceilings = [min(TIMING.resync_max, 2 * TIMING.resync_timeout * 2 ** n) for n in range(8)]
    assert waits == pytest.approx([c / 2 + jitter * c / 2 for c in ceilings])
    assert all(w >= TIMING.resync_timeout for w in waits)
    assert waits == sorted(waits) and max(waits) <= TIMING.resync_max


def test_a_snapshot_starts_the_backoff_over():
    m = live(rng=lambda: 1.0)
    m.gap(1, now=0.0)
    m.tick(m.retry_at)
    m.tick(m.retry_at)
    m.snapshot(snapshot(generation=2), now=20.0)
    assert m.gap(1, now=21.0).resync == "gap"
    assert m.retry_at == 21.0 + 2 * TIMING.resync_timeout


def test_only_changes_are_published():
    m = live()
    assert m.resyncing(now=1.0).status is not None
    assert m.resyncing(now=1.1).status is None


@pytest.mark.parametrize("module", ["tickmesh.consumers.books.orderbook",
                                    "tickmesh.consumers.books.state"])
def test_the_book_and_its_machine_are_pure(module):
    from tests.test_groundwork_purity import loaded_io

    assert loaded_io(module) == []


SETUPS = {
    "live": lambda m: None,
    "stale": lambda m: m.gap(1, now=0.5),
    "resyncing": lambda m: m.resyncing(now=0.5),
    "crossed": lambda m: m.delta(delta(bids=[(101.5, 1.0)]), now=0.5),
}
EVENTS = {
    "snapshot": (lambda m: m.snapshot(snapshot(generation=3), now=1.0), "live"),
    "delta": (lambda m: m.delta(delta(bids=[(100.25, 1.0)]), now=1.0), None),
    "newer delta": (lambda m: m.delta(delta(generation=2), now=1.0), "stale"),
    "gap": (lambda m: m.gap(2, now=1.0), "stale"),
    "resyncing": (lambda m: m.resyncing(now=1.0), "resyncing"),
    "disconnected": (lambda m: m.disconnected(now=1.0), "stale"),
    "provider up": (lambda m: m.provider_up(now=1.0), None),
}


@pytest.mark.parametrize("start", SETUPS)
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_on_every_event(start, event):
    m = live()
    SETUPS[start](m)
    assert m.state == start
    apply, expected = EVENTS[event]
    out = apply(m)
    assert m.state == (expected or start)
    assert out.applied == (m.state == "live" and event in ("snapshot", "delta"))
    assert not (out.applied and m.book.cross())  # a crossed book is never given out
