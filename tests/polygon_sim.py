"""Test helpers for the Polygon simulator: start it as a supervised child on a free port, wait
until it serves, and drive its HTTP test control (/control/stats, /drop, /silence)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.conftest import free_port
from tests.waiting import wait_until


@dataclass
class Sim:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stocks"

    def control(self, command: str = "stats", **params: Any) -> dict[str, Any]:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        address = f"http://127.0.0.1:{self.port}/control/{command}?{query}"
        with urllib.request.urlopen(address, timeout=5) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self.control("stats")


def _serving(sim: Sim) -> bool:
    try:
        sim.stats()
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


def start_sim(spawn_child, port: int | None = None, name: str = "polygon-sim", **settings) -> Sim:
    """The simulator as the supervisor would run it; returns once it answers on its port."""
    port = port or free_port()
    proc = spawn_child("handlers.polygon.simulator", name, {"port": port, **settings})
    sim = Sim(port, proc)
    wait_until(lambda: _serving(sim) or proc.poll() is not None, timeout=15,
               what="the polygon simulator to listen")
    assert proc.poll() is None, "the simulator exited at start"
    return sim
