"""The supervisor's Prometheus endpoint: valid text whose counters are what was published, a
taken port refused clearly, and a Grafana dashboard that queries only what it exports."""

import asyncio
import json
import os
import re
import socket
from urllib.request import urlopen

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tickmesh.bus import Subscriber
from tickmesh.bus.events import Heartbeat, Sample, Status
from tickmesh.runtime.metrics import HISTOGRAM, SCHEMA, Histogram
from tickmesh.supervisor.child import Child
from tickmesh.supervisor.config import ChildConfig
from tickmesh.supervisor.health import Health
from tickmesh.supervisor.observer import MetricsError, Observer
from tickmesh.supervisor.prometheus import Exporter
from tickmesh.supervisor.usage import Usage
from tests.conftest import REPO, free_port
from tests.supervised import Running, child_toml, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

BURST = "tests.children.burst"
DASHBOARD = REPO / "config" / "grafana-dashboard.json"


def metrics_toml(port: int) -> str:
    return f'[supervisor]\nmetrics = "127.0.0.1:{port}"\n'


def scrape(port: int) -> dict[tuple[str, frozenset], float] | None:
    """Every sample the endpoint serves now, by (name, labels); None if it does not answer."""
    try:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = answer.read().decode()
    except OSError:
        return None
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_the_endpoint_counts_exactly_the_events_published(spawn, run_dir):
    port = free_port()
    config = write_config(run_dir, metrics_toml(port), child_toml(
        "burst", BURST, {"provider": "burstfeed", "trades": 150, "quotes": 60}))
    last_seq: dict[bytes, int] = {}  # topic -> its last sequence number: events published on it
    with Subscriber(f"ipc://{run_dir}/subscribe", ["trade.burstfeed", "quote.burstfeed"]) as sub:
        Running(spawn, run_dir, config)

        def seen(kind: str) -> int:
            return sum(seq for topic, seq in last_seq.items() if topic.startswith(kind.encode()))

        def all_seen() -> bool:
            while (event := sub.recv(timeout=0.05)) is not None:
                last_seq[f"{event.__struct_config__.tag}.{event.symbol}".encode()] = event.seq
            return seen("trade") == 150 and seen("quote") == 60

        wait_until(all_seen, timeout=15, what="the subscriber to see the last of every topic")

    def published() -> dict | None:
        samples = scrape(port)
        trades = samples and value(samples, "tickmesh_events_published_total", process="burst",
                                   kind="trade", provider="burstfeed")
        return samples if trades == seen("trade") else None

    samples = wait_until(published, timeout=10, what="the endpoint to count every trade")
    assert value(samples, "tickmesh_events_published_total", process="burst", kind="quote",
                 provider="burstfeed") == seen("quote")
    assert value(samples, "tickmesh_child_restarts_total", process="supervisor",
                 child="burst") == 0
    assert value(samples, "tickmesh_child_state", process="burst", state="running") == 1
    assert value(samples, "tickmesh_child_state", process="burst", state="failed") == 0
    for process in ("supervisor", "forwarder", "burst"):
        assert value(samples, "tickmesh_heartbeat_age_seconds", process=process) < 5
        assert value(samples, "tickmesh_process_cpu_seconds_total", process=process) > 0
        assert value(samples, "tickmesh_process_resident_memory_bytes", process=process) > 1e6
    assert value(samples, "tickmesh_last_event_timestamp_seconds", process="burst") > 0


def test_run_refuses_a_taken_metrics_port_before_starting_anything(spawn, run_dir):
    port = free_port()
    config = write_config(run_dir, metrics_toml(port), child_toml("burst", BURST, {
        "provider": "burstfeed", "trades": 1, "quotes": 1}))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = tickmesh(spawn, run_dir, "run", str(config))
    assert result.code == 1
    assert f"supervisor.metrics: 127.0.0.1:{port} is in use" in result.err
    assert not (run_dir / "system.json").exists()


def test_a_port_taken_after_the_preflight_fails_the_start_clearly():
    observer = Observer(lambda: [], "supervisor")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError, match=f"supervisor.metrics: cannot listen on "
                                               f"127.0.0.1:{port}"):
            asyncio.run(observer.export(("127.0.0.1", port)))


def every_declared_metric(name: str, epoch: int) -> Heartbeat:
    """A heartbeat with a sample of every metric the schema declares."""
    samples = []
    for metric in SCHEMA.values():
        if metric.kind == HISTOGRAM:
            histogram = Histogram(metric.buckets or (1.0,))
            histogram.observe(0.5)
            samples += histogram.samples(metric.name)
        else:
            samples.append(Sample(metric.name, metric.kind, dict.fromkeys(metric.labels, "x"), 1))
    return Heartbeat(provider=name, ts_event=0, ts_recv=0, pid=os.getpid(), epoch=epoch,
                     metrics=samples)


def exported() -> str:
    """What the endpoint serves for one running child whose heartbeat has every metric."""
    health = Health()
    health.heartbeat(every_declared_metric("feed-a", epoch=5), 100.0)
    health.status(Status(provider="alpaca", ts_event=0, ts_recv=0, epoch=5, state="subscribed"),
                  100.0)
    child = Child(ChildConfig("feed-a", "tickmesh.handlers.alpaca.handler"))
    child.started(os.getpid(), 0.0)
    return generate_latest(Exporter(health, Usage(), lambda: [child], "supervisor")).decode()


def test_every_declared_metric_is_exported_with_its_help_and_kind():
    families = {family.name: family for family in text_string_to_metric_families(exported())}
    for metric in SCHEMA.values():
        family = families[f"tickmesh_{metric.name}"]
        assert (family.type, family.documentation) == (metric.kind, metric.help)
        assert all(sample.labels["process"] == "feed-a" for sample in family.samples)
    assert families["tickmesh_connected"].samples[0].labels == {"process": "feed-a",
                                                                "provider": "alpaca"}


def test_the_dashboard_queries_only_metrics_the_endpoint_exports():
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\btickmesh_[a-z0-9_]+", expr)}
    names = {sample.name for family in text_string_to_metric_families(exported())
             for sample in family.samples}
    assert queried and queried <= names, queried - names
    assert all(panel["datasource"]["uid"] == "${DS_PROMETHEUS}" for panel in dashboard["panels"])
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
