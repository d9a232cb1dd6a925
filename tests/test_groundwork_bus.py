"""The bus and the runtime's contracts: subscriber timeouts are deadlines, metrics have a
schema, and every process heartbeats its metrics (the forwarder and the supervisor too)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import pytest

from tickmesh.bus import AsyncSubscriber, Heartbeat, Publisher, Subscriber
from tickmesh.bus.topics import Pattern, TopicError
from tickmesh.runtime.metrics import SCHEMA, Counts, Metrics, UnknownMetric, flat
from tests.buslog import BusLog
from tests.conftest import wait_for_forwarder
from tests.publishing import trade
from tests.waiting import wait_until
from tests.supervised import Running, child_toml, write_config


@pytest.mark.parametrize("text", ["trade.alpaca.", "trade..AAPL", ".alpaca", "trade."])
def test_an_empty_pattern_part_is_an_error_not_a_silent_mismatch(text):
    with pytest.raises(TopicError, match="empty part"):
        Pattern.parse(text)


def _flood(endpoint: str, stop: threading.Event) -> None:
    """MSFT trades as fast as they go: each one wakes a subscriber that only wants AAPL."""
    publisher = Publisher(endpoint)
    while not stop.is_set():
        publisher.publish(trade("MSFT", provider="test"))
        time.sleep(0.001)
    publisher.close()


def test_a_sync_recv_timeout_is_a_deadline_for_the_whole_call(forwarder):
    stop = threading.Event()
    flood = threading.Thread(target=_flood, args=(forwarder.publish, stop))
    with Subscriber(forwarder.subscribe, ["*.*.AAPL", "*.*.MSFT"]) as warm, \
            Subscriber(forwarder.subscribe, ["*.*.AAPL"]) as sub:
        flood.start()
        try:
            assert warm.recv(timeout=10) is not None  # the flood reaches subscribers
            started = time.monotonic()
            assert sub.recv(timeout=0.3) is None
            assert time.monotonic() - started < 3  # unwanted messages did not restart it
        finally:
            stop.set()
            flood.join()


def test_an_async_recv_takes_a_timeout(forwarder):
    async def wait() -> object:
        sub = AsyncSubscriber(forwarder.subscribe, ["trade.nobody"])
        try:
            return await sub.recv(timeout=0.2)
        finally:
            sub.close()

    assert asyncio.run(wait()) is None


def test_counts_refuse_names_the_schema_does_not_declare():
    counts = Counts()
    counts["frames_received"] += 1
    counts["bad_input", "malformed"] += 2
    with pytest.raises(UnknownMetric):
        counts["malformed_T"] += 1
    with pytest.raises(UnknownMetric):
        counts["bad_input"] += 1  # bad_input takes a reason
    assert flat(counts) == {"frames_received": 1, 'bad_input{reason="malformed"}': 2}


def test_samples_carry_kinds_labels_and_histograms():
    metrics = Metrics()
    metrics.counts["provider_errors", "402"] += 1
    metrics.histogram("reconnect_delay_seconds").observe(0.3)
    metrics.collect(lambda: [(("events_published", "trade", "alpaca"), 7)])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s for s in metrics.samples()}
    assert samples["provider_errors", (("code", "402"),)].kind == "counter"
    assert samples["events_published", (("kind", "trade"), ("provider", "alpaca"))].value == 7
    assert samples["reconnect_delay_seconds_bucket", (("le", "0.5"),)].value == 1
    assert samples["reconnect_delay_seconds_bucket", (("le", "0.1"),)].value == 0
    assert samples["reconnect_delay_seconds_count", ()].value == 1
    assert samples["uptime_seconds", ()].kind == "gauge"
    assert all(m.help for m in SCHEMA.values())


def test_every_metric_in_the_code_is_documented():
    from tests.conftest import REPO

    documented = (REPO / "docs" / "metrics.md").read_text()
    assert all(f"`{name}`" in documented for name in SCHEMA)


def test_the_forwarder_and_the_supervisor_heartbeat_with_their_metrics(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", "tests.children.ticker"))
    Running(spawn, run_dir, config).wait_all_running()
    with BusLog(f"ipc://{run_dir}/subscribe", ["heartbeat"]) as bus:
        beats = bus.until(lambda _: {"forwarder", "supervisor", "ticker"} <= {
            b.provider for b in bus.of(Heartbeat)} and bus.of(Heartbeat),
            what="a heartbeat from every process")
    supervisor = next(b for b in beats if b.provider == "supervisor")
    assert supervisor.metric("child_running", child="ticker") == 1.0
    ticker = [b for b in beats if b.provider == "ticker"][-1]
    assert ticker.metric("events_published", kind="trade", provider="ticker") > 0


def test_the_forwarder_refuses_a_message_over_max_message_bytes(spawn_child, bus_endpoints):
    spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=replace(bus_endpoints, max_message_bytes=100_000))
    wait_for_forwarder(bus_endpoints)
    huge = trade("HUGE", provider="test", conditions=["x" * 1000] * 1000)  # ~1 MB
    with Subscriber(bus_endpoints.subscribe, ["trade.test"]) as sub:
        publisher = Publisher(bus_endpoints.publish)
        try:
            publisher.publish(huge)
            seen = []

            def small_one_arrived() -> bool:
                publisher.publish(trade("SMALL", provider="test"))
                event = sub.recv(timeout=0.05)
                if event is not None:
                    seen.append(event.symbol)
                return "SMALL" in seen

            wait_until(small_one_arrived, timeout=15, what="small messages after the huge one")
        finally:
            publisher.close()
    assert "HUGE" not in seen
