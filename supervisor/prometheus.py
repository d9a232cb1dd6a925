"""The supervisor's Prometheus endpoint: GET /metrics at [supervisor] metrics = "HOST:PORT", in
Prometheus' text format, served on the supervisor's own loop (aiohttp) and built with
prometheus_client (a collector on a private registry, read at each scrape).

Every metric of every process's latest heartbeat (runtime.metrics.SCHEMA, HELP from there) is
`tickmesh_<name>` with a `process` label beside its own: counters end in `_total`, gauges are
as they are, histograms have `_bucket`, `_sum` and `_count`. Only processes that run now are
exported. Derived, per process:

    tickmesh_heartbeat_age_seconds             seconds since its last heartbeat
    tickmesh_last_event_timestamp_seconds      when its count of published events last grew
    tickmesh_connected{provider}               1 while its feed is connected, else 0
    tickmesh_process_cpu_seconds_total         user + system CPU time (psutil)
    tickmesh_process_resident_memory_bytes     resident memory (psutil)
    tickmesh_child_state{state}                1 for the child's state, 0 for the others

And, per bus line (supervisor.reach), without a `process` label:

    tickmesh_bus_line_up{line}                 1 while the supervisor's own heartbeat comes back
                                               on the line, else 0
    tickmesh_bus_line_heartbeat_age_seconds{line}  seconds since it last came (none: never)
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.registry import Collector

from tickmesh.bus.events import Sample
from tickmesh.runtime.metrics import COUNTER, HISTOGRAM, SCHEMA, Metric
from tickmesh.supervisor.child import Child, State
from tickmesh.supervisor.health import Health
from tickmesh.supervisor.reach import UP
from tickmesh.supervisor.usage import Usage

PATH = "/metrics"
PREFIX = "tickmesh_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTOGRAM_PARTS = ("bucket", "sum", "count")
SHUTDOWN_SECONDS = 1.0  # a scrape still going at a stop gets this long


class Exporter(Collector):
    """Reads the supervisor's view of its processes at each scrape."""

    def __init__(self, health: Health, usage: Usage, children: Callable[[], Sequence[Child]],
                 supervisor: str,
                 lines: Callable[[], list[dict[str, Any]]] = lambda: []) -> None:
        """`children`: the supervised children now; `supervisor`: its own process name;
        `lines`: each bus line's reachability now (supervisor.reach's report)."""
        self._health = health
        self._usage = usage
        self._children = children
        self._supervisor = supervisor
        self._lines = lines

    def collect(self) -> Iterator[Family]:
        now = time.time()
        running = {self._supervisor: os.getpid()}
        running.update((child.name, child.pid) for child in self._children()
                       if child.alive and child.pid)
        yield from _heartbeat_families(
            (name, process.samples) for name in running
            if (process := self._health.process(name)) is not None)
        yield from self._health_families(running, now)
        yield from self._usage_families(running)
        yield self._states()
        yield from self._line_families()

    def _health_families(self, running: dict[str, int], now: float) -> tuple[Family, ...]:
        age = GaugeMetricFamily(f"{PREFIX}heartbeat_age_seconds",
                                "seconds since the process's last heartbeat", labels=["process"])
        last = GaugeMetricFamily(f"{PREFIX}last_event_timestamp_seconds",
                                 "when the process's count of published events last grew "
                                 "(unix s, at heartbeat resolution)", labels=["process"])
        connected = GaugeMetricFamily(f"{PREFIX}connected", "1 while the process's feed is "
                                      "connected (connected, authenticated or subscribed), else 0",
                                      labels=["process", "provider"])
        for name in running:
            process, feed = self._health.process(name), self._health.feed(name)
            if process is not None:
                age.add_metric([name], now - process.received_at)
                if process.last_event_at is not None:
                    last.add_metric([name], process.last_event_at)
            if feed is not None:
                connected.add_metric([name, feed.provider], float(feed.connected))
        return age, last, connected

    def _usage_families(self, running: dict[str, int]) -> tuple[Family, ...]:
        cpu = CounterMetricFamily(f"{PREFIX}process_cpu_seconds", "user and system CPU time "
                                  "the process used", labels=["process"])
        memory = GaugeMetricFamily(f"{PREFIX}process_resident_memory_bytes",
                                   "the process's resident memory", labels=["process"])
        measured = self._usage.measure(running.values())
        for name, pid in running.items():
            if pid in measured:
                cpu.add_metric([name], measured[pid].cpu_seconds)
                memory.add_metric([name], measured[pid].rss_bytes)
        return cpu, memory

    def _states(self) -> Family:
        states = GaugeMetricFamily(f"{PREFIX}child_state", "1 for the supervised child's state "
                                   "(starting, running, backoff, stopping, stopped, exited, "
                                   "failed), 0 for the others", labels=["process", "state"])
        for child in self._children():
            for state in State:
                states.add_metric([child.name, str(state)], float(child.state is state))
        return states


    def _line_families(self) -> tuple[Family, ...]:
        up = GaugeMetricFamily(f"{PREFIX}bus_line_up", "1 while the supervisor's own heartbeat "
                               "comes back on the bus line (both its sides work from this host), "
                               "else 0", labels=["line"])
        age = GaugeMetricFamily(f"{PREFIX}bus_line_heartbeat_age_seconds", "seconds since the "
                                "supervisor's own heartbeat last came back on the bus line",
                                labels=["line"])
        for line in self._lines():
            up.add_metric([line["line"]], float(line["state"] == UP))
            if line["own_heartbeat_age"] is not None:
                age.add_metric([line["line"]], line["own_heartbeat_age"])
        return up, age


def _heartbeat_families(beats: Iterable[tuple[str, list[Sample]]]) -> Iterable[Family]:
    """One family per declared metric, a series per process (and the metric's labels)."""
    families: dict[str, Family] = {}
    for process, samples in beats:
        for sample in samples:
            metric = _declared(sample.name)
            if metric is None:
                continue  # not in this version's schema: nothing to say what it is
            if metric.name not in families:
                families[metric.name] = Family(PREFIX + metric.name, metric.help, metric.kind)
            suffix = "_total" if metric.kind == COUNTER else ""
            families[metric.name].add_sample(f"{PREFIX}{sample.name}{suffix}",
                                             {**sample.labels, "process": process}, sample.value)
    return families.values()


def _declared(name: str) -> Metric | None:
    """The schema's metric of a heartbeat sample: a counter's or gauge's by its name, a
    histogram's by its name with _bucket, _sum or _count."""
    if name in SCHEMA:
        return SCHEMA[name] if SCHEMA[name].kind != HISTOGRAM else None
    base, _, part = name.rpartition("_")
    metric = SCHEMA.get(base)
    return metric if metric and metric.kind == HISTOGRAM and part in HISTOGRAM_PARTS else None


async def serve(address: tuple[str, int], collector: Collector) -> web.AppRunner:
    """Listen at `address` for scrapes of `collector` (OSError if it cannot); stop it with the
    runner's cleanup()."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get(PATH, metrics)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, *address).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
