"""Where the running system is. While a system runs, its run dir (TICKMESH_RUN_DIR, else
/tmp/tickmesh-UID) holds `system.json`, written by its supervisor: the config it runs, its pid,
its control endpoint, its bus (the `[bus]` table as every child gets it: the two endpoints, the
high-water marks, the CURVE key files) and its log dir.

The command line finds a system this way (tickmesh.system), and so does a Subscriber given no
endpoint (`Subscriber(patterns=[...])`); `tickmesh endpoints` prints what it finds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tickmesh.bus import sockets
from tickmesh.bus.sockets import BusConfig

RUN_DIR_ENV = "TICKMESH_RUN_DIR"
DEFAULT_RUN_DIR = "/tmp/tickmesh-{uid}"
SYSTEM_FILE = "system.json"
_REQUIRED = {"config", "control", "bus"}


class NoSystem(LookupError):
    """No running system in the run dir `run_dir`: `problem` says why."""

    def __init__(self, problem: str, run_dir: Path) -> None:
        super().__init__(f"{problem} (start one with `tickmesh run`, or set {RUN_DIR_ENV} to "
                         "the run dir of the one running)")
        self.problem = problem
        self.run_dir = run_dir


def run_dir() -> Path:
    """The run dir to look in: TICKMESH_RUN_DIR, else the default, /tmp/tickmesh-UID."""
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR.replace("{uid}", str(os.getuid())))


def running_system(directory: Path | None = None) -> dict[str, Any]:
    """What the system.json of `directory` (default: `run_dir()`) says, with its "run_dir";
    NoSystem if there is none, or it does not describe a running system."""
    directory = directory or run_dir()
    path = directory / SYSTEM_FILE
    try:
        system = json.loads(path.read_text())
    except (OSError, ValueError):
        raise NoSystem(f"no running system found in {directory}", directory) from None
    if not (isinstance(system, dict) and _REQUIRED <= system.keys() and _is_bus(system["bus"])):
        raise NoSystem(f"{path} does not describe a running system", directory)
    system.setdefault("run_dir", str(directory))
    return system


def running_bus(directory: Path | None = None) -> BusConfig:
    """The bus of the system running in `directory` (default: `run_dir()`), put to use as the
    command line does: this process's sockets to it are secured as it says (bus.sockets)."""
    bus = BusConfig.from_dict(running_system(directory)["bus"])
    sockets.use(bus)
    return bus


def _is_bus(bus: Any) -> bool:
    try:
        BusConfig.from_dict(bus)
    except TypeError:
        return False
    return True
