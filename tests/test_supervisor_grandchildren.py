"""No process a child starts outlives the system (runtime.keeper): not after an orderly stop,
not after a SIGKILL of the supervisor, not across the restarts of a child that crashes; and
the keeper relays a child's exit faithfully.

Each test's children (tests.children.spawner) record the sleepers they start; whatever
happens, the test kills those still alive when it ends, and the children and keepers it saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tickmesh.runtime import keeper, spec
from tests.supervised import Running, alive, child_toml, start_time, write_config
from tests.waiting import wait_until

SPAWNER = "tests.children.spawner"


class Sleepers:
    """The sleepers the spawners recorded in `path`, each named by (pid, start time), and the
    spawners and keepers seen alive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[tuple[int, int]] = set()  # spawners and keepers: killed at the end

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines(keepends=True)
        return [json.loads(line) for line in lines if line.endswith("\n")]

    def wait_for(self, count: int, timeout: float = 20) -> list[dict]:
        """Wait until `count` sleepers are recorded; note their spawners and keepers."""
        records = wait_until(lambda: len(self.records()) >= count and self.records(),
                             timeout=timeout, what=f"{count} sleepers recorded")
        for record in records:
            self._see(record["child"])
            self._see(_parent(record["child"]))
        return records

    def living(self) -> list[int]:
        """The recorded sleepers still alive (not those whose pid another process now has)."""
        return [r["sleeper"] for r in self.records() if _is(r["sleeper"], r["since"])]

    def kill_all(self) -> None:
        named = {(r["sleeper"], r["since"]) for r in self.records()} | self.seen
        for pid, since in named:
            if _is(pid, since):
                os.kill(pid, signal.SIGKILL)

    def _see(self, pid: int | None) -> None:
        since = start_time(pid) if pid else None
        if pid and since is not None:
            self.seen.add((pid, since))


def _is(pid: int, since: int) -> bool:
    """Is the process that started at `since` as `pid` still alive?"""
    return alive(pid) and start_time(pid) == since


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (FileNotFoundError, ValueError):
        return None


@pytest.fixture
def sleepers(run_dir: Path) -> Iterator[Sleepers]:
    recorded = Sleepers(run_dir / "sleepers.jsonl")
    try:
        yield recorded
    finally:
        recorded.kill_all()


def spawners(sleepers: Sleepers, crash: bool = False, **keys) -> list[str]:
    """Two spawner children: one that Popens its sleeper, one that double-forks it."""
    record = str(sleepers.path)
    return [child_toml("popen", SPAWNER, {"record": record, "crash": crash}, **keys),
            child_toml("daemon", SPAWNER, {"record": record, "double_fork": True,
                                           "crash": crash}, **keys)]


def test_an_orderly_stop_leaves_no_grandchild(spawn, run_dir, sleepers):
    supervisor = Running(spawn, run_dir, write_config(run_dir, *spawners(sleepers)))
    status = supervisor.wait_all_running()
    records = sleepers.wait_for(2)
    assert {r["child"] for r in records} == {status["children"][name]["pid"]
                                            for name in ("popen", "daemon")}
    assert len(sleepers.living()) == 2

    os.kill(supervisor.process.pid, signal.SIGINT)

    assert supervisor.process.wait(timeout=15) == 0
    assert sleepers.living() == []  # each keeper reaped them before it exited
    assert not any(alive(r["child"]) for r in records)


def test_a_sigkilled_supervisor_leaves_no_grandchild(spawn, run_dir, sleepers):
    supervisor = Running(spawn, run_dir, write_config(run_dir, *spawners(sleepers)))
    supervisor.wait_all_running()
    records = sleepers.wait_for(2)
    assert len(sleepers.living()) == 2

    os.kill(supervisor.process.pid, signal.SIGKILL)

    wait_until(lambda: not sleepers.living(), timeout=5,
               what="every sleeper to die with the supervisor")
    wait_until(lambda: not any(alive(r["child"]) for r in records), timeout=5,
               what="every child to die with the supervisor")


def test_a_crashing_child_leaves_no_grandchild_at_any_restart(spawn, run_dir, sleepers):
    config = write_config(run_dir, *spawners(sleepers, crash=True, max_restarts=2))
    supervisor = Running(spawn, run_dir, config)
    for name in ("popen", "daemon"):
        assert supervisor.wait_for(name, "failed", timeout=20)["restarts"] == 2

    records = sleepers.wait_for(6)  # 3 runs of each, each recorded before it exited

    assert len(records) == 6
    assert sleepers.living() == []  # each keeper reaped them before it exited


@pytest.mark.parametrize("script, code", [
    ("raise SystemExit(3)", 3),
    ("import os, signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); "  # Python ignores it
     "os.kill(os.getpid(), signal.SIGPIPE)", -signal.SIGPIPE),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
])
def test_the_keeper_exits_as_its_child_did(spawn, script, code):
    read, write = os.pipe()
    argv = keeper.command(os.getpid(), write, [sys.executable, "-c", script])
    process = spawn(argv, pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    child = int(os.read(read, 64))
    os.close(read)

    assert process.wait(timeout=15) == code
    assert child != process.pid and not alive(child)


def test_the_keeper_names_the_parent_as_the_runtime_does():
    assert keeper.PARENT_ENV == spec.PARENT_ENV
