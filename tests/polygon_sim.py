"""Test helpers for the Polygon simulator: start it as a supervised child on a free port, wait
until it serves, and drive its HTTP test control (/control/stats, /drop, /silence).

The simulator takes the API key it accepts from an environment variable (`key_env`): a test
sets SIM_KEY_ENV (monkeypatch.setenv) before `start_sim(..., key_env=SIM_KEY_ENV)`."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests import simulators

SIM_KEY_ENV = "TICKMESH_TEST_POLYGON_SIM_KEY"


@dataclass
class Sim:
    port: int
    proc: subprocess.Popen | None = None  # None: started otherwise

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


def serving(port: int) -> bool:
    """A simulator on `port` answers its test control."""
    try:
        Sim(port).stats()
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


def start_sim(spawn_child, port: int | None = None, name: str = "polygon-sim", **settings) -> Sim:
    """The simulator as the supervisor would run it; returns once it answers on its port."""
    return Sim(*simulators.start(spawn_child, "handlers.polygon.sim.server", name, port, settings,
                                 ready=serving))
