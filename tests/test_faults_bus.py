"""Fault suite, bad input on the bus: hostile bytes for the bus decoder (bus.events.decode) and for
a real Subscriber on a real socket, fed random one-, two- and three-frame messages by a raw
ZeroMQ publisher. Nothing may raise out of the decoder but its documented errors, nothing may
crash the subscriber, and every message it is offered is either delivered (a typed event under
its own topic) or counted in `malformed`. (The providers' normalizers are fuzzed in
tests/test_bad_values.py.)"""

from __future__ import annotations

import time

import msgpack
import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickmesh.bus import Subscriber
from tickmesh.bus.events import Event, Trade, decode, encode
from tickmesh.bus.topics import Selection
from tests.publishing import send_until_received
from tests.waiting import wait_until

KINDS = ["trade", "quote", "book_snapshot", "book_delta", "bbo", "depth", "book_status", "alert",
         "bar", "status", "control", "heartbeat", "nope", ""]
KEYS = ["k", "v", "p", "s", "te", "tr", "q", "e", "px", "sz", "id", "sd", "x", "c", "bp", "bs",
        "ap", "as", "b", "a", "g", "st", "msg", "code", "pid", "m", "iv", "o", "h", "l", "cl",
        "vol", "vw", "n", "w", "act", "from"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**64, max_value=2**64 - 1)
           | st.floats(allow_nan=True) | st.text(max_size=12) | st.binary(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)

PATTERNS = ["*"]  # the fuzzed subscriber takes everything
SELECTION = Selection(PATTERNS)


@st.composite
def event_maps(draw) -> dict:
    """Maps shaped like events: a known (or bogus) kind, schema keys with values of any type."""
    fields = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=14))
    fields["k"] = draw(st.sampled_from(KINDS) | values)
    return fields


def _pack(obj) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return b"\xc1"  # msgpack's never-used byte


def _valid(seq: int) -> bytes:
    return encode(Trade(provider="fz", symbol="OK", ts_event=1, ts_recv=1, seq=seq, epoch=7,
                        price=1.0, size=1.0, trade_id="1", side="", exchange="", conditions=[]))


@st.composite
def mutated(draw) -> bytes:
    """A valid event with a few bytes overwritten, or cut short."""
    payload = bytearray(_valid(draw(st.integers(1, 1000))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(payload) - 1))
        payload[at] = draw(st.integers(0, 255))
    return bytes(payload[:draw(st.integers(0, len(payload)))])


payloads = st.one_of(st.binary(max_size=200), event_maps().map(_pack), values.map(_pack),
                     mutated())
topics = st.one_of(st.binary(max_size=40),
                   st.builds(lambda k, p, s: f"{k}.{p}.{s}|".encode(), st.sampled_from(KINDS),
                             st.sampled_from(["fz", "alpaca", "", "A.B"]), st.text(max_size=6)))


@pytest.mark.timeout(60)
@settings(max_examples=400)
@given(payload=payloads)
def test_the_decoder_raises_only_its_documented_errors(payload):
    try:
        event = decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    assert isinstance(event, Event)
    assert decode(encode(event)) == event  # what it accepts, it can carry on


@pytest.mark.timeout(60)
@settings(max_examples=300)
@given(data=st.data())
def test_mutated_events_decode_or_fail_cleanly(data):
    try:
        decode(data.draw(mutated()))
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass


@pytest.fixture
def raw_bus(run_dir):
    """A raw PUB socket bound in the run dir, and a Subscriber to everything connected to it,
    synchronised (the subscriber has received a probe)."""
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    endpoint = f"ipc://{run_dir}/fuzz"
    pub.bind(endpoint)
    sub = Subscriber(endpoint, PATTERNS, rcvhwm=0)

    send_until_received(sub, lambda: pub.send_multipart([b"trade.fz.OK|", _valid(1)]),
                        "the subscriber to receive the probe")
    yield pub, sub
    sub.close()
    pub.close(linger=0)
    context.term()


@pytest.mark.timeout(120)
def test_a_subscriber_on_a_real_socket_survives_random_messages(raw_bus):
    pub, sub = raw_bus
    sentinel = [2]  # the valid trade's next sequence number (epoch 7, topic trade.fz.OK|)

    @settings(max_examples=150, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(st.tuples(topics, payloads),
                              st.lists(st.binary(max_size=30), min_size=1, max_size=3)
                              .map(tuple)), min_size=1, max_size=20))
    def fuzz(messages):
        malformed, received, dropped = sub.malformed, sub.received, _dropped(sub)
        for frames in messages:
            pub.send_multipart(list(frames))
        end = sentinel[0]
        sentinel[0] += 1
        pub.send_multipart([b"trade.fz.OK|", _valid(end)])  # then one good event, to know

        delivered = []

        def sentinel_arrived() -> bool:
            event = sub.recv(timeout=0.1)  # must never raise
            if event is not None:
                delivered.append(event)
            return isinstance(event, Trade) and event.symbol == "OK" and event.seq == end

        wait_until(sentinel_arrived, timeout=10, interval=0, what="the good event after fuzz")
        for event in delivered:
            topic = f"{event.__struct_config__.tag}.{event.provider}.{event.symbol}|".encode()
            assert isinstance(event, Event) and topic.endswith(b"|")
        counted = (sub.malformed - malformed) + (sub.received - received) \
            + (_dropped(sub) - dropped)
        assert counted == 1 + sum(_expected(frames) for frames in messages)

    fuzz()
    # after all of that, the subscriber still tracks gaps on the good topic
    gaps = sub.gaps
    pub.send_multipart([b"trade.fz.OK|", _valid(sentinel[0] + 5)])
    event = wait_until(lambda: sub.recv(timeout=0.1), timeout=10, what="a trade after a skip")
    assert event.seq == sentinel[0] + 5 and sub.gaps == gaps + 1


def _dropped(sub: Subscriber) -> int:
    """Messages the subscriber's sequence checks dropped (bus.sequence: duplicates, stale
    epochs, implausible jumps, topics beyond max_topics)."""
    tracker = sub.tracker
    return tracker.duplicates + tracker.stale_epoch + tracker.implausible + tracker.topics_refused


def _expected(frames: tuple) -> int:
    """What one message adds to delivered + malformed + dropped: a lone frame is malformed;
    two frames are delivered, malformed or dropped (unless the subscriber's own filter drops
    the topic); of three, the first two are a message and the third, read as a lone topic, is
    malformed."""
    if len(frames) == 1:
        return 1
    return int(SELECTION.wants(frames[0])) + (len(frames) == 3)


@pytest.mark.timeout(60)
def test_garbage_between_good_events_loses_none_of_them(raw_bus):
    """The good events around garbage all arrive, in order, with no gap counted."""
    pub, sub = raw_bus
    sent = list(range(100, 160))
    for seq in sent:
        pub.send_multipart([b"trade.fz.OK|", b"\xc1garbage"])
        pub.send_multipart([b"trade.fz.OK|", _valid(seq)])
        pub.send_multipart([b"quote.fz.OK|", _valid(seq)])  # a trade under a quote topic
        pub.send(b"lone frame")
    got = []
    deadline = time.monotonic() + 10
    while len(got) < len(sent) and time.monotonic() < deadline:
        event = sub.recv(timeout=0.2)
        if event is not None:
            got.append(event.seq)
    assert got == sent
    assert sub.malformed >= 3 * len(sent) - 2  # the last two may not be read yet
