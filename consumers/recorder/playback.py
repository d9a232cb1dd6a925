"""A recording published back onto a bus, with its original pacing or faster: what
`tickmesh replay` does (its arguments, and the bus of its own it starts, are
tickmesh.commands.replay's).

Each recorded message is sent as its two recorded frames, byte for byte (Publisher
.publish_raw): the original topics, providers, symbols, sequence numbers and epochs. A replay
is marked by its own `status` events on `status.replay.|`: "connected" (what is replayed, at
what speed) before the first event and "disconnected" (how many were sent, and what damage
cost) after the last. Damaged records are skipped (consumers.recorder.recording: on to the
next good record); `Recording.problems()` says what was.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator, NamedTuple, Sequence

import zmq

from tickmesh.bus import events, topics
from tickmesh.bus.publisher import Publisher
from tickmesh.consumers.recorder.recording import MESSAGE, Record, Recording

REPLAY_SOURCE = "replay"
CONNECT_WAIT_S = 10.0  # for the bus's forwarder to take the replay's publisher
DRAIN_LINGER_MS = 5000  # at the end, queued events get this long to leave


class Played(NamedTuple):
    sent: int
    seconds: float


def play(recording: Recording, endpoint: str | tuple[str, ...], speed: float, patterns: Sequence[str] = (),
         start: int | None = None, end: int | None = None,
         go: Callable[[], object] = lambda: None, subscriber: bool = False) -> Played:
    """Publish the recorded messages received between `start` and `end` (ns since the epoch,
    inclusive; None: no bound) on topics matching any of `patterns` (none: every topic) to
    the bus's publish `endpoint`, at `speed` times their recorded pace (inf: no pacing); `go`
    is called once the publisher is connected, before the first event; with `subscriber`,
    the first event waits (without end: Ctrl-C) until a subscriber has subscribed on the bus.
    Returns once the last event has left (or DRAIN_LINGER_MS has passed), with ZeroMQ's
    context ended."""
    publisher = Publisher(endpoint, ready_timeout=CONNECT_WAIT_S)
    if subscriber:  # from now on, every subscription that reaches it (one during `go` too)
        publisher._socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # bus.publisher's XPUB
    go()
    if subscriber:
        wait_for_subscriber(publisher)
    pace = "max" if speed == float("inf") else f"{speed:g}"
    announce(publisher, "connected", f"replaying {recording.path} at speed {pace}")
    began = time.monotonic()
    wanted = [topics.Pattern.parse(pattern) for pattern in patterns]
    sent = replay(selected(recording, wanted, start, end), publisher, speed)
    seconds = time.monotonic() - began
    damaged = f" ({recording.summary()})" if recording.damage else ""
    announce(publisher, "disconnected", f"replay finished: {sent} events{damaged}")
    publisher.close(linger_ms=DRAIN_LINGER_MS)
    zmq.Context.instance().term()  # returns once the queued events have left (or the linger)
    return Played(sent, seconds)


def wait_for_subscriber(publisher: Publisher) -> None:
    """Until a subscriber's subscription reaches the publisher (its XPUB_VERBOSE set since the
    forwarder's own subscription was taken: a subscription to everything, the same as the
    forwarder's, comes through too). The forwarder (libzmq's proxy) passes each new
    subscription of its subscribers on to every publisher, and once it has, it sends that
    subscriber what it asked for."""
    socket = publisher._socket  # bus.publisher's XPUB, which drains these messages otherwise
    while True:
        if socket.poll(200) and socket.recv()[:1] == b"\x01":
            return


def selected(recording: Recording, patterns: list[topics.Pattern], start: int | None,
             end: int | None) -> Iterator[Record]:
    """The recorded messages to replay, in order."""
    for record in recording.records():
        if record.type != MESSAGE or (start is not None and record.recv_ns < start):
            continue
        if end is not None and record.recv_ns > end:
            break
        if patterns and not any(_matches(p, record.topic) for p in patterns):
            continue
        yield record


def _matches(pattern: topics.Pattern, topic: bytes) -> bool:
    try:
        return pattern.matches(topic)
    except (ValueError, UnicodeDecodeError):
        return False


def replay(records: Iterator[Record], publisher: Publisher, speed: float) -> int:
    """Publish `records` with their recorded pacing divided by `speed`; how many were sent."""
    sent, first_ns, start = 0, None, time.monotonic()
    send = publisher.publish_raw
    for record in records:
        if speed != float("inf"):
            if first_ns is None:
                first_ns = record.recv_ns
            delay = start + (record.recv_ns - first_ns) / 1e9 / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        send(record.topic, record.data)
        sent += 1
    return sent


def announce(publisher: Publisher, state: str, message: str) -> None:
    now = time.time_ns()
    publisher.publish(events.Status(provider=REPLAY_SOURCE, ts_event=now, ts_recv=now,
                                    state=state, message=message))
