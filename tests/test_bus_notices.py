"""What a subscriber tells its reader, and in which order, on a real forwarder (bus.sequence has
the rules): duplicates and stale epochs dropped and counted, a publisher's stop told after all
it sent, its silence told while the reader waits, a bounded number of topics, and an async
read cancelled during a gap fill that loses and reorders nothing."""

from __future__ import annotations

import asyncio
import json
import threading

import zmq

from tickmesh.bus import Heartbeat, Publisher, Subscriber, Trade
from tickmesh.bus.events import encode
from tickmesh.bus.sequence import PublisherSilent, PublisherStopped
from tickmesh.bus.subscriber import AsyncSubscriber
from tickmesh.bus.topics import topic
from tests.publishing import send_until_received
from tests.waiting import wait_until

EPOCH = 1_000


def trade(symbol: str, seq: int, epoch: int = EPOCH) -> tuple[bytes, bytes]:
    event = Trade(provider="test", symbol=symbol, ts_event=1, ts_recv=1, price=float(seq),
                  size=1.0)
    event.seq, event.epoch = seq, epoch
    return topic("trade", "test", symbol), encode(event)


def heartbeat(seq: int, epoch: int = EPOCH, final: bool = False) -> tuple[bytes, bytes]:
    event = Heartbeat(provider="test", ts_event=1, ts_recv=1, pid=1, final=final)
    event.seq, event.epoch = seq, epoch
    return topic("heartbeat", "test"), encode(event)


def connected(forwarder, sub: Subscriber) -> Publisher:
    """A publisher whose warm-up trades of X (epoch 1: any later epoch is newer) the subscriber
    has begun to receive."""
    publisher = Publisher(forwarder.publish)
    seq = iter(range(1, 10**6))
    send_until_received(sub, lambda: publisher.publish_raw(*trade("X", next(seq), 1)),
                        "the subscription")
    while sub.recv(timeout=0.05) is not None:
        pass
    return publisher


def told_in_order(sub: Subscriber, until: int, timeout: float = 5.0) -> list:
    """Events' seqs and notices, in the order the reader met them, until `until` items."""
    told: list = []
    sub.on_gap = lambda gap: told.append(("gap", gap.expected, gap.received))
    sub.on_publisher = lambda gone: told.append((type(gone).__name__, gone.epoch))
    wait_until(lambda: ((event := sub.recv(timeout=0.05)) is not None
                        and told.append(event.seq)) or len(told) >= until,
               timeout=timeout, what=f"{until} items")
    return told


def test_a_duplicate_is_dropped_and_does_not_move_the_tracker_back(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.test.X"])
    publisher = connected(forwarder, sub)
    for seq in (1, 2, 3, 2, 3, 4):
        publisher.publish_raw(*trade("X", seq))
    assert told_in_order(sub, 4) == [1, 2, 3, 4]
    assert (sub.tracker.duplicates, sub.gaps) == (2, 0)


def test_an_older_epoch_is_a_stale_publisher_dropped_unless_everything_is_asked_for(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.test.X"])
    replay = Subscriber(forwarder.subscribe, ["trade.test.X"], accept_stale=True)
    publisher = connected(forwarder, sub)
    while replay.recv(timeout=0.05) is not None:
        pass
    for message in (trade("X", 1), trade("X", 2), trade("X", 9, EPOCH - 1), trade("X", 3)):
        publisher.publish_raw(*message)
    assert told_in_order(sub, 3) == [1, 2, 3]
    assert sub.tracker.stale_epoch == 1
    assert [event.price for event in iter(lambda: replay.recv(timeout=1), None)][-4:] == \
        [1.0, 2.0, 9.0, 3.0]


def test_a_stop_is_told_after_everything_the_publisher_sent(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.test.X"])
    publisher = connected(forwarder, sub)
    publisher.publish_raw(*heartbeat(1))
    for seq in (1, 2, 3):
        publisher.publish_raw(*trade("X", seq))
    publisher.publish_raw(*heartbeat(2, final=True))
    assert told_in_order(sub, 4) == [1, 2, 3, ("PublisherStopped", EPOCH)]
    publisher.publish_raw(*trade("X", 1, EPOCH + 1))  # its next life: first seen again
    assert told_in_order(sub, 1) == [1] and sub.gaps == 0


def test_a_silent_publisher_is_told_while_the_reader_waits(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.test.X"], heartbeat_timeout=0.5)
    publisher = connected(forwarder, sub)
    publisher.publish_raw(*heartbeat(1))
    publisher.publish_raw(*trade("X", 1))
    told: list = []
    sub.on_publisher = told.append
    assert sub.recv(timeout=5).seq == 1
    assert sub.recv(timeout=3) is None  # nothing more comes: the reader waits ...
    assert [type(notice) for notice in told] == [PublisherSilent]  # ... and is told meanwhile
    assert told[0].epoch == EPOCH and told[0].silent_for >= 0.5


def test_a_publisher_heard_only_by_its_heartbeats_is_not_told(forwarder):
    """A reader is told of the publishers whose messages it received, not of every process."""
    sub = Subscriber(forwarder.subscribe, ["trade.test.X"], heartbeat_timeout=0.3)
    publisher = connected(forwarder, sub)
    told: list = []
    sub.on_publisher = told.append
    publisher.publish_raw(*heartbeat(1, epoch=EPOCH + 5))
    publisher.publish_raw(*heartbeat(2, epoch=EPOCH + 5, final=True))
    assert sub.recv(timeout=1) is None and told == []


def test_topics_beyond_max_topics_are_refused_until_a_publisher_is_forgotten(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.test"], max_topics=6)
    publisher = connected(forwarder, sub)  # X is one topic
    for i in range(10):
        publisher.publish_raw(*trade(f"S{i}", 1))
    assert sorted(told_in_order(sub, 5)) == [1] * 5
    wait_until(lambda: sub.recv(timeout=0.05) is None and sub.tracker.topics_refused == 5,
               what="five topics refused")
    publisher.publish_raw(*heartbeat(1, epoch=1, final=True))  # X's publisher stopped
    publisher.publish_raw(*heartbeat(1, final=True))  # and so did the S topics' publisher
    publisher.publish_raw(*trade("NEW", 1, EPOCH + 1))
    assert told_in_order(sub, 3)[-1] == 1  # room again, after the two stops


class SlowRecorder:
    """A gap-fill server (a real REP socket, in its own thread) that answers once let go."""

    def __init__(self, endpoint: str, payloads: list[bytes]) -> None:
        self.endpoint = endpoint
        self.payloads = payloads
        self.listening, self.asked, self.go = (threading.Event() for _ in range(3))
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        self.listening.wait(5)

    def serve(self) -> None:
        socket = zmq.Context.instance().socket(zmq.REP)
        socket.bind(self.endpoint)
        self.listening.set()
        try:
            if socket.poll(10_000):
                socket.recv()
                self.asked.set()
                self.go.wait(10)
                header = json.dumps({"found": len(self.payloads), "missing": []}).encode()
                socket.send_multipart([header, *self.payloads])
        finally:
            socket.close(linger=100)

    def close(self) -> None:
        self.go.set()
        self.thread.join(15)


def test_a_read_cancelled_during_a_gap_fill_reorders_nothing(forwarder, run_dir):
    recorder = SlowRecorder(f"ipc://{run_dir}/gapfill", [trade("X", seq)[1] for seq in (2, 3)])

    async def scenario() -> list[int]:
        sub = AsyncSubscriber(forwarder.subscribe, ["trade.test.X"], fill_gaps=True,
                              gapfill_endpoint=recorder.endpoint)
        publisher = Publisher(forwarder.publish)
        seq = iter(range(1, 10**6))
        while await sub.recv(timeout=0.05) is None:  # until the subscription is in
            publisher.publish_raw(*trade("X", next(seq), 1))
        while await sub.recv(timeout=0.05) is not None:
            pass
        for message in (trade("X", 1), trade("X", 4), trade("X", 5)):  # 2 and 3 lost
            publisher.publish_raw(*message)
        got = [(await sub.recv(timeout=5)).seq]
        assert await sub.recv(timeout=0.2) is None  # gave up while the recorder thinks
        assert recorder.asked.is_set()
        recorder.go.set()
        while len(got) < 5:
            got.append((await sub.recv(timeout=5)).seq)
        sub.close()
        publisher.close()
        return got

    try:
        assert asyncio.run(scenario()) == [1, 2, 3, 4, 5]
    finally:
        recorder.close()


def test_a_snapshot_says_where_its_symbols_deltas_stand(forwarder):
    """BookSnapshot.delta_seq: the number of the last delta sent before it, so that a reader
    can tell a loss right after a snapshot even on a delta topic it never heard before."""
    from tickmesh.bus import BookDelta, BookSnapshot

    sub = Subscriber(forwarder.subscribe, ["book_snapshot.test.X"])
    publisher = Publisher(forwarder.publish)
    book = {"provider": "test", "symbol": "X", "ts_event": 1, "ts_recv": 1, "bids": [],
            "asks": []}

    def snapshots() -> list[int]:
        publisher.publish(BookSnapshot(**book))
        return [event.delta_seq for event in iter(lambda: sub.recv(timeout=0.05), None)]

    assert wait_until(snapshots, what="the first snapshot")[-1] == 0  # no delta yet
    for _ in range(3):
        publisher.publish(BookDelta(**book))
    assert wait_until(snapshots, what="a later snapshot")[-1] == 3
