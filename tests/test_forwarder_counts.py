"""The forwarder counts what it forwards (issue 20): a real forwarder and a real publisher, its
heartbeats' forwarder_messages_in and _out, and `tickmesh status`'s in/s and out/s for it
(supervisor.health) from those heartbeats."""

import pytest

from tickmesh.bus.publisher import Publisher
from tickmesh.supervisor.health import RATE_WINDOW, Health
from tests.buslog import BusLog
from tests.publishing import trade

SENT = 500


def test_the_forwarders_heartbeat_counts_the_messages_it_forwarded_in_and_out(forwarder):
    with BusLog(forwarder.subscribe, ["heartbeat.forwarder"]) as bus:
        first = bus.until(lambda _: bus.heartbeat("forwarder"), what="a forwarder heartbeat")
        before = first.metric("forwarder_messages_in")
        publisher = Publisher(forwarder.publish)
        try:
            for _ in range(SENT):
                publisher.publish(trade("X", provider="count"))
            # every message published since `first` was forwarded, its own heartbeats too
            beat = bus.until(lambda _: next(
                (h for h in bus.heartbeats("forwarder")
                 if h.metric("forwarder_messages_in") >= before + SENT), None),
                what=f"a heartbeat counting the {SENT} trades")
        finally:
            publisher.close()
        beats = bus.heartbeats("forwarder")
    forwarded_in = beat.metric("forwarder_messages_in")
    heartbeats_between = sum(1 for h in beats if first.ts_event < h.ts_event <= beat.ts_event)
    assert before + SENT <= forwarded_in <= before + SENT + heartbeats_between
    assert beat.metric("forwarder_messages_out") == forwarded_in  # no subscriber drops here
    counts = [h.metric("forwarder_messages_in") for h in beats]
    assert counts == sorted(counts)  # cumulative

    health = Health()
    for h in (first, beat):
        health.heartbeat(h, h.ts_event / 1e9)
    report = health.report("forwarder", beat.ts_event / 1e9)
    # over its last 5 s (RATE_WINDOW): from `first`, or from its start (all counters 0,
    # `first`'s uptime before it) if `first` came less than 5 s before
    between = (beat.ts_event - first.ts_event) / 1e9
    if between >= RATE_WINDOW:
        expected = (forwarded_in - before) / between
    else:
        expected = forwarded_in / (between + first.metric("uptime_seconds"))
    assert expected > 0
    assert report["events_per_second"] == pytest.approx(expected, abs=0.01)  # out/s
    assert report["events_received_per_second"] == pytest.approx(expected, abs=0.01)  # in/s
    assert report["events_published"] == int(forwarded_in)
