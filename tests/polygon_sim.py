"""Test helpers for the Polygon simulator: start it as a supervised child on a free port, wait
until it serves, and drive its test control (tests.simcontrol).

The simulator takes the API key it accepts from an environment variable (`key_env`): a test
sets SIM_KEY_ENV (monkeypatch.setenv) before `start_sim(..., key_env=SIM_KEY_ENV)`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

from tests import simcontrol, simulators

SIM_KEY_ENV = "TICKMESH_TEST_POLYGON_SIM_KEY"


@dataclass
class Sim:
    port: int
    proc: subprocess.Popen | None = None  # None: started otherwise

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/stocks"

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return simcontrol.control(self.port, action, **params)

    def stats(self) -> dict[str, Any]:
        return self.control("stats")


def start_sim(spawn_child, port: int | None = None, name: str = "polygon-sim", **settings) -> Sim:
    """The simulator as the supervisor would run it; returns once it answers on its port."""
    return Sim(*simulators.start(spawn_child, "tickmesh.handlers.polygon.sim.server", name, port, settings,
                                 ready=simcontrol.serving))
