"""Helpers for tests that run a real supervisor: write a config, start `tickmesh run` on it,
ask for its status, tell whether a pid is still alive."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tickmesh.supervisor.control import NoSupervisor, request_status
from tests.waiting import wait_until

TICKMESH = [sys.executable, "-m", "tickmesh.cli"]


def child_toml(name: str, run: str, settings: dict[str, Any] | None = None, **keys: Any) -> str:
    """One [[children]] table (JSON scalars and arrays are valid TOML values)."""
    lines = ["[[children]]", f"name = {json.dumps(name)}", f"run = {json.dumps(run)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    if settings:
        inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
        lines.append(f"settings = {{ {inline} }}")
    return "\n".join(lines) + "\n"


def write_config(run_dir: Path, *children: str) -> Path:
    path = run_dir / "tickmesh.toml"
    path.write_text("\n".join(children))
    return path


def env(run_dir: Path) -> dict[str, str]:
    return {"TICKMESH_RUN_DIR": str(run_dir)}


@dataclass
class Result:
    code: int
    out: str
    err: str


def tickmesh(spawn: Callable, run_dir: Path, *args: str, timeout: float = 20) -> Result:
    """Run one short `tickmesh` command (through the spawn fixture) to completion."""
    process = spawn([*TICKMESH, *args], env=env(run_dir), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=timeout)
    return Result(process.returncode, out, err)


class Running:
    """A supervisor started through the spawn fixture, with its stderr and stdout in files;
    `extra_env`: more environment variables for it (its children's secrets)."""

    def __init__(self, spawn: Callable, run_dir: Path, config: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.control = f"ipc://{run_dir}/control"
        self.log_path = run_dir / "supervisor.log"
        self.out_path = run_dir / "supervisor.out"
        with self.log_path.open("w") as log, self.out_path.open("w") as out:
            self.process = spawn([*TICKMESH, "run", str(config)],
                                 env={**env(run_dir), **(extra_env or {})}, stdout=out, stderr=log)

    def status(self) -> dict[str, Any] | None:
        """The supervisor's status, or None if it does not answer (yet)."""
        try:
            return request_status(self.control, timeout=1.0)
        except NoSupervisor:
            return None

    def child(self, name: str) -> dict[str, Any] | None:
        status = self.status()
        return status["children"][name] if status else None

    def wait_for(self, name: str, state: str, timeout: float = 10) -> dict[str, Any]:
        """Wait until child `name` is in `state`; returns its status."""
        def reached() -> dict[str, Any] | None:
            child = self.child(name)
            return child if child and child["state"] == state else None

        return wait_until(reached, timeout=timeout, what=f"{name} to be {state}")

    def wait_all_running(self, timeout: float = 10) -> dict[str, Any]:
        def all_running() -> dict[str, Any] | None:
            status = self.status()
            if status and all(c["state"] == "running" for c in status["children"].values()):
                return status
            return None

        return wait_until(all_running, timeout=timeout, what="every child to be running")

    def log_events(self) -> list[dict[str, Any]]:
        """The supervisor's own structured log lines so far."""
        lines = self.log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [record for record in records if record.get("process") == "supervisor"]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphaned zombie may not be reaped soon)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot, /proc/PID/stat's field 22): with its pid,
    it names a process unambiguously, even once the pid is reused. None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return int(stat.rpartition(")")[2].split()[19])
