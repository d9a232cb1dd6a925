"""What the supervisor tells of its processes beyond their life cycle: their health as the bus
shows it (supervisor.health, fed by supervisor.watch) and their CPU and memory
(supervisor.usage), in its `status` answer and at its Prometheus endpoint
(supervisor.prometheus). The supervisor itself is one of the processes, under its own name.
And the bus: which line's forwarder runs here, and whether each line is reachable
(supervisor.reach, fed by a watch of each line alone).

The endpoint's libraries (aiohttp, prometheus_client) are imported only when it is on: every
`tickmesh` command imports the supervisor's loop, and with it this module.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from tickmesh.bus.sockets import BusConfig
from tickmesh.bus.topics import topic
from tickmesh.supervisor.child import Child
from tickmesh.supervisor.health import Health
from tickmesh.supervisor.reach import Reach
from tickmesh.supervisor.usage import Usage
from tickmesh.supervisor.watch import watch, watch_line

if TYPE_CHECKING:
    from aiohttp import web


class MetricsError(Exception):
    """The Prometheus endpoint cannot listen where supervisor.metrics says."""


class Observer:
    def __init__(self, children: Callable[[], Sequence[Child]], name: str,
                 bus: BusConfig | None = None) -> None:
        """`children`: the supervised children now; `name`: the supervisor's process name;
        `bus`: the bus it is on (None: none to watch)."""
        self.health = Health()
        self.usage = Usage()
        self.bus = bus
        served = bus.served_line if bus else None
        self.reach = Reach(bus.lines if bus else (), served.name if served else None)
        self._children = children
        self._name = name
        self._started = time.monotonic()
        self._exporting: web.AppRunner | None = None

    async def export(self, address: tuple[str, int] | None) -> None:
        """Serve the Prometheus endpoint at `address` (None: none); MetricsError if it cannot
        listen there."""
        if address is None:
            return
        from tickmesh.supervisor import prometheus
        exporter = prometheus.Exporter(self.health, self.usage, self._children, self._name,
                                       lambda: self.reach.report(time.time()))
        try:
            self._exporting = await prometheus.serve(address, exporter)
        except OSError as exc:
            host, port = address
            raise MetricsError(f"supervisor.metrics: cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}") from None

    async def watch(self) -> None:
        """Follow the bus (every line) until cancelled."""
        assert self.bus is not None
        await watch(self.bus.subscribe_endpoints, self.health)

    async def watch_lines(self, own_epoch: int) -> None:
        """Follow each line alone until cancelled, for its reachability; `own_epoch`: the
        supervisor's heartbeat publisher's."""
        assert self.bus is not None
        own = (topic("heartbeat", self._name), own_epoch)
        await asyncio.gather(*(watch_line(line.name, line.subscribe, self.reach, own)
                               for line in self.bus.lines))

    def status(self, children: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The status answer's "supervisor" entry (its name too), its "bus" entry (the line
        whose forwarder runs here, or "none", and each line's reachability: supervisor.reach),
        and `children` (each child's status by name, with its "pid") with each one's
        cpu_percent, rss_bytes and health added."""
        own, now = os.getpid(), time.time()
        measured = self.usage.measure([own, *(c["pid"] for c in children.values() if c["pid"])])

        def observed(name: str, pid: int | None) -> dict[str, Any]:
            usage = measured.get(pid) if pid else None
            return {"cpu_percent": self.usage.cpu_percent(pid, usage, now) if usage else None,
                    "rss_bytes": usage.rss_bytes if usage else None,
                    "health": self.health.report(name, now)}

        return {
            "supervisor": {"pid": own, "name": self._name,
                           "uptime": round(time.monotonic() - self._started, 1),
                           **observed(self._name, own)},
            "bus": {"forwarder": self.bus.forwarder if self.bus else None,
                    "lines": self.reach.report(now)},
            "children": {name: {**child, **observed(name, child["pid"])}
                         for name, child in children.items()},
        }

    async def close(self) -> None:
        if self._exporting is not None:
            await self._exporting.cleanup()
