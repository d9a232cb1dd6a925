"""What the supervisor hands a child: its spec (name, settings table, bus config) in the
environment variable TICKMESH_CHILD, its parent's pid (its keeper's, runtime.keeper) in
TICKMESH_PARENT_PID, and the file descriptor to say "ready" on in TICKMESH_READY_FD
(runtime.readiness)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from tickmesh.bus.sockets import BusConfig

SPEC_ENV = "TICKMESH_CHILD"
PARENT_ENV = "TICKMESH_PARENT_PID"
READY_FD_ENV = "TICKMESH_READY_FD"
EXIT_BAD_SETTINGS = 2
"""A child's exit code for settings it cannot run with: the supervisor does not restart it."""


@dataclass(frozen=True)
class ChildSpec:
    name: str
    settings: dict[str, Any]
    bus: BusConfig

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "settings": self.settings,
                           "bus": self.bus.to_dict()})

    @classmethod
    def from_json(cls, text: str) -> "ChildSpec":
        raw = json.loads(text)
        return cls(raw["name"], raw.get("settings", {}), BusConfig.from_dict(raw["bus"]))


def child_spec() -> ChildSpec:
    """The spec the supervisor handed this process (exits with code 2 if there is none)."""
    text = os.environ.get(SPEC_ENV)
    if not text:
        sys.exit(f"{SPEC_ENV} is not set: this module is started by `tickmesh run`")
    try:
        return ChildSpec.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        sys.exit(f"{SPEC_ENV} is not a valid child spec: {exc}")
