"""Importing a child's module when `tickmesh check` (or `run`) checks it: a module that never
finishes being imported, or exits, is named with its child, the other children are still
checked, and whatever the import started is ended."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.supervised import TICKMESH, Result, alive, child_toml, env, start_time, write_config

BLOCKS = "tests.children.blocks_at_import"
STARTS = "tests.children.starts_at_import"
EXITS = "tests.children.exits_at_import"
TICKER = "tests.children.ticker"
RECORD_ENV = "TICKMESH_TEST_RECORD"  # the file the modules record what they start in


@pytest.fixture
def record(run_dir: Path) -> Iterator[Path]:
    """The file the modules record what they start in; whatever is still alive at the end is
    killed (if the check left it behind, the test has failed already)."""
    path = run_dir / "started.jsonl"
    yield path
    for entry in _entries(path):
        for pid in (entry["sleeper"], entry["importer"]):
            if alive(pid) and (pid != entry["sleeper"] or start_time(pid) == entry["since"]):
                os.kill(pid, signal.SIGKILL)


def _entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _tickmesh(spawn: Callable, run_dir: Path, record: Path, *args: str) -> tuple[Result, float]:
    """Run `tickmesh ARGS` with the record file named; its result, and how long it took."""
    started = time.monotonic()
    process = spawn([*TICKMESH, *args], env={**env(run_dir), RECORD_ENV: str(record)},
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=20)
    return Result(process.returncode, out, err), time.monotonic() - started


def _left_behind(record: Path) -> list[int]:
    return [pid for entry in _entries(record) for pid in (entry["sleeper"], entry["importer"])
            if alive(pid)]


def test_a_module_that_never_finishes_its_import_is_named_and_ended(spawn, run_dir, record):
    config = write_config(run_dir, child_toml("ticker", TICKER), child_toml("stuck", BLOCKS),
                          child_toml("typo", "tests.children.no_such_child"))
    result, took = _tickmesh(spawn, run_dir, record, "check", str(config))
    assert result.code == 2 and result.out == "", result
    assert (f"{config}: children[1] (stuck).run: importing {BLOCKS} did not finish within 5 s "
            "(supervisor.import_timeout)") in result.err
    assert f"children[2] (typo).run: no module named 'tests.children.no_such_child'" in result.err
    assert "children[0]" not in result.err
    assert len(_entries(record)) == 1 and _left_behind(record) == []
    assert took < 10


def test_run_refuses_a_module_that_never_finishes_its_import(spawn, run_dir, record):
    config = write_config(run_dir, "[supervisor]\nimport_timeout = 0.5\n",
                          child_toml("stuck", BLOCKS))
    result, took = _tickmesh(spawn, run_dir, record, "run", str(config))
    assert result.code == 2
    assert f"children[0] (stuck).run: importing {BLOCKS} did not finish within 0.5 s" in result.err
    assert _left_behind(record) == [] and not (run_dir / "publish").exists()
    assert took < 5


def test_what_a_module_starts_at_import_is_ended_after_the_check(spawn, run_dir, record):
    config = write_config(run_dir, child_toml("starter", STARTS), child_toml("ticker", TICKER))
    result, _ = _tickmesh(spawn, run_dir, record, "check", str(config))
    assert result.code == 0 and result.out.startswith("ok: "), result
    assert len(_entries(record)) == 1 and _left_behind(record) == []


def test_a_module_that_exits_at_import_is_named(spawn, run_dir, record):
    config = write_config(run_dir, child_toml("quitter", EXITS),
                          child_toml("typo", "tests.children.no_such_child"))
    result, _ = _tickmesh(spawn, run_dir, record, "check", str(config))
    assert result.code == 2
    assert (f"children[0] (quitter).run: {EXITS} exited while it was imported or checked: "
            "TICKMESH_CHILD is not set") in result.err
    assert "children[1] (typo).run: no module named" in result.err
