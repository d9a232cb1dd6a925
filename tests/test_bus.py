"""The bus, with a real forwarder process: exact-symbol filtering, gap detection for a slow
subscriber while others lose nothing, restarts not mistaken for gaps, standard msgpack."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import msgpack
import pytest
import zmq

from tickmesh.bus import Publisher, Subscriber
from tickmesh.bus.events import encode
from tickmesh.bus.sequence import Gap, SequenceTracker
from tickmesh.bus.topics import Pattern, TopicError, topic
from tests.conftest import wait_for_forwarder
from tests.publishing import send_until_received, trade
from tests.waiting import wait_until

SYMBOLS = ["AAPL", "AAPLX", "BRK", "BRK.B", "BTC/USD"]


def drain(sub: Subscriber, into: list) -> None:
    while (event := sub.recv(timeout=0.01)) is not None:
        into.append(event)


def test_exact_symbol_filtering(forwarder):
    patterns = {
        "trade.alpaca.AAPL": {"AAPL"},
        "*.*.AAPL": {"AAPL"},
        "trade.alpaca.BRK": {"BRK"},
        "trade.*.BRK.B": {"BRK.B"},
        "trade.alpaca.BTC/USD": {"BTC/USD"},
        "trade.alpaca": set(SYMBOLS),
        "quote": set(),
    }
    subs = {p: Subscriber(forwarder.subscribe, [p]) for p in patterns}
    received: dict[str, list] = {p: [] for p in patterns}
    pub = Publisher(forwarder.publish)

    def every_trade_subscriber_has_enough() -> bool:
        for symbol in SYMBOLS:
            pub.publish(trade(symbol))
        for p, sub in subs.items():
            drain(sub, received[p])
        return all(len(received[p]) >= 20 for p, want in patterns.items() if want)

    wait_until(every_trade_subscriber_has_enough, timeout=15, what="trades on every subscription")
    for p, want in patterns.items():
        assert {e.symbol for e in received[p]} == want, p
    for sub in subs.values():
        sub.close()
    pub.close()


def test_slow_subscriber_sees_gaps_while_publisher_and_others_keep_pace(spawn, spawn_child, bus_endpoints):
    spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=replace(bus_endpoints, hwm=2000, subscriber_hwm=2000))
    wait_for_forwarder(bus_endpoints)
    count, rate = 30_000, 20_000
    fast = Subscriber(bus_endpoints.subscribe, ["trade.test"])
    slow = Subscriber(bus_endpoints.subscribe, ["trade.test"], rcvhwm=100)
    publisher = spawn(
        [sys.executable, "-m", "tests.bus_publisher", bus_endpoints.publish, "DATA", str(count), str(rate)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    for sub in (fast, slow):
        wait_until(lambda: (e := sub.recv(timeout=0.05)) is not None and e.symbol == "WARM",
                   timeout=15, what="warm-up trades")

    fast_events: list = []
    slow_events: list = []
    publisher_done = threading.Event()
    slow_saw_end = threading.Event()

    def read_slowly_then_drain() -> None:
        while not slow_saw_end.is_set():
            event = slow.recv(timeout=0.05)
            if event is None or event.symbol != "DATA":
                continue
            slow_events.append(event)
            if event.price < 0:
                slow_saw_end.set()
            elif not publisher_done.is_set():
                time.sleep(0.002)  # the deliberate slowness under test, not synchronization

    reader = threading.Thread(target=read_slowly_then_drain)
    reader.start()
    publisher.stdin.write("go\n")
    publisher.stdin.flush()

    def fast_has_all() -> bool:
        while (event := fast.recv(timeout=0.01)) is not None:
            if event.symbol == "DATA" and event.price >= 0:
                fast_events.append(event)
        return len(fast_events) >= count

    wait_until(fast_has_all, timeout=30, what="every event at the fast subscriber")
    assert publisher.stdout.readline().strip() == f"done {count}"
    slow_received_when_publisher_done = len(slow_events)
    publisher_done.set()
    wait_until(slow_saw_end.is_set, timeout=20, what="the slow subscriber to drain to the end")
    reader.join()
    publisher.stdin.write("quit\n")
    publisher.stdin.flush()

    assert [e.seq for e in fast_events] == list(range(fast_events[0].seq, fast_events[0].seq + count))
    assert fast.missed == 0 and fast.gaps == 0
    # The publisher finished at its own pace while the slow reader was far behind ...
    assert slow_received_when_publisher_done < count // 2
    # ... and the slow reader was told exactly what it lost.
    first, last = slow_events[0].seq, slow_events[-1].seq
    assert slow.gaps > 0
    assert len(slow_events) + slow.missed == last - first + 1


def test_restart_is_not_a_gap_but_a_skip_is():
    tracker = SequenceTracker()
    t = topic("trade", "alpaca", "AAPL")
    for seq in (1, 2, 3):
        assert tracker.check(t, epoch=100, seq=seq) is True
    assert tracker.check(t, epoch=200, seq=1) is True  # the publisher restarted
    assert (tracker.gaps, tracker.restarts) == (0, 1)
    gap = tracker.check(t, epoch=200, seq=5)
    assert (tracker.gaps, tracker.missed) == (1, 3)
    assert gap == Gap(t, 2, 5, 200)
    assert tracker.check(topic("trade", "alpaca", "MSFT"), epoch=200, seq=7) is True  # first
    assert tracker.gaps == 1


def test_wire_format_is_standard_msgpack_behind_a_topic_frame(forwarder):
    context = zmq.Context.instance()
    raw = context.socket(zmq.SUB)
    raw.setsockopt(zmq.SUBSCRIBE, b"trade.alpaca.AAPL|")
    raw.connect(forwarder.subscribe)
    pub = Publisher(forwarder.publish)

    def frames():
        pub.publish(trade("AAPL"))
        return raw.recv_multipart() if raw.poll(50) else None

    topic_frame, payload = wait_until(frames, timeout=10, what="a raw message")
    decoded = msgpack.unpackb(payload)
    assert topic_frame == b"trade.alpaca.AAPL|"
    assert decoded["k"] == "trade" and decoded["s"] == "AAPL" and decoded["v"] == 2
    assert decoded["e"] == pub.epoch and decoded["q"] >= 1
    assert {"p", "te", "tr", "px", "sz"} <= decoded.keys()
    raw.close(linger=0)
    pub.close()


def test_tcp_endpoints_work(free_tcp_endpoints):
    publish, subscribe = free_tcp_endpoints

    sub = Subscriber(subscribe, ["trade.alpaca.AAPL"])
    pub = Publisher(publish)

    first = send_until_received(sub, lambda: pub.publish(trade("AAPL")), "a trade over tcp",
                                timeout=15)
    assert first.symbol == "AAPL"
    sub.close()
    pub.close()


@pytest.mark.parametrize("pattern, prefix, client_filter", [
    ("trade", b"trade.", False),
    ("trade.alpaca", b"trade.alpaca.", False),
    ("trade.alpaca.AAPL", b"trade.alpaca.AAPL|", False),
    ("trade.*.AAPL", b"trade.", True),
    ("*.alpaca", b"", True),
    ("*", b"", False),
])
def test_patterns_subscribe_by_the_longest_prefix(pattern, prefix, client_filter):
    parsed = Pattern.parse(pattern)
    assert parsed.prefix == prefix
    assert parsed.needs_client_filter is client_filter


@pytest.mark.parametrize("bad", ["", "Trade.alpaca", "trade.al paca", "trade.alpaca.A|B"])
def test_bad_patterns_are_rejected(bad):
    with pytest.raises(TopicError):
        Pattern.parse(bad)


def test_a_new_publisher_loses_none_of_its_first_events(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.alpaca"])
    warm = Publisher(forwarder.publish)

    send_until_received(sub, lambda: warm.publish(trade("WARM")),
                        "the subscription to reach the forwarder")
    fresh = Publisher(forwarder.publish)
    assert fresh.forwarder_ready
    fresh.publish(trade("FIRST"))  # at once, no retry: it must not be lost
    first = wait_until(lambda: (e := sub.recv(timeout=0.05)) is not None and e.symbol == "FIRST" and e,
                       timeout=10, what="the fresh publisher's first event")
    assert first.seq == 1 and first.epoch == fresh.epoch
    for closable in (sub, warm, fresh):
        closable.close()


def pub_seq(pub: Publisher) -> int:
    """The last sequence number `pub` gave a trade.alpaca.AAPL| event."""
    return pub.stream_counts()[("trade", "alpaca")]


def test_an_async_batch_takes_what_has_arrived_in_order_and_ends_before_a_gap(forwarder):
    import asyncio

    from tickmesh.bus.subscriber import AsyncSubscriber

    async def scenario() -> tuple[list, int]:
        told: list = []  # batches and gaps, in the order the reader met them
        sub = AsyncSubscriber(forwarder.subscribe, ["trade.alpaca.AAPL"],
                              on_gap=lambda gap: told.append(("gap", gap.expected, gap.received)))
        witness = Subscriber(forwarder.subscribe, ["trade.alpaca.AAPL"])
        pub = Publisher(forwarder.publish)
        pub.publish(trade("AAPL"))
        while (first := await sub.recv(timeout=0.05)) is None:  # the subscriptions take a while
            pub.publish(trade("AAPL"))
        while (event := witness.recv(timeout=5)).seq < pub_seq(pub):
            pass
        while (event := await sub.recv(timeout=0.05)) is not None:
            first = event
        start = first.seq + 1
        for _ in range(25):
            pub.publish(trade("AAPL"))
            pub.publish(trade("AAPLX"))  # not wanted: never in a batch
        skipped = trade("AAPL", seq=start + 30, epoch=pub.epoch)  # start+25 .. start+29 "lost"
        pub.publish_raw(topic("trade", "alpaca", "AAPL"), encode(skipped))
        # once the witness has the last one, so (all but surely) has `sub`: a burst waiting
        wait_until(lambda: (event := witness.recv(timeout=1)) is not None
                   and event.seq == start + 30, timeout=5, interval=0, what="the last trade")
        seen = start - 1
        while seen < start + 30:
            batch = await asyncio.wait_for(sub.recv_batch(10), 5)
            told.append([e.seq - start for e in batch])
            seen = batch[-1].seq
        sub.close()
        witness.close()
        pub.close()
        return told, start

    told, start = asyncio.run(scenario())
    batches = [entry for entry in told if isinstance(entry, list)]
    assert [seq for batch in batches for seq in batch] == [*range(25), 30]
    assert all(1 <= len(batch) <= 10 for batch in batches)
    assert len(batches) <= 4  # what had arrived came in one wake-up (10 at a time), up to the gap
    # the gap is told after the batch ending with the last trade before it, before the next
    assert told[-2:] == [("gap", start + 25, start + 30), [30]]
