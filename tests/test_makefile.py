"""The Makefile's two commands on machines with different Pythons: it takes whatever python3
on the PATH is 3.11 or newer, says clearly when none is, and `make run` installs no test
tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def make(path: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([MAKE, "-s", "-C", str(REPO), *targets], capture_output=True,
                          text=True, timeout=20, env={"PATH": f"{path}:/usr/bin/nothing"})


def fake_python(directory: Path, name: str, version: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python {version}'\nexit 1\n")
    script.chmod(0o755)


def test_a_python3_that_is_new_enough_is_taken(tmp_path):
    (tmp_path / "python3").symlink_to(sys.executable)  # this interpreter: 3.11 or newer
    result = make(tmp_path, "python")
    assert result.returncode == 0, result.stderr


def test_a_newer_minor_version_is_found_when_python3_is_old(tmp_path):
    fake_python(tmp_path, "python3", "3.9.2")
    (tmp_path / "python3.13").symlink_to(sys.executable)
    result = make(tmp_path, "-n", "-B", "run")
    assert result.returncode == 0, result.stderr
    assert "python3.13 -m venv .venv" in result.stdout


def test_no_python_new_enough_is_said_clearly(tmp_path):
    fake_python(tmp_path, "python3", "3.9.2")
    result = make(tmp_path, "run")
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr
    assert "Python 3.9.2" in result.stderr


def test_make_run_installs_no_test_tools(tmp_path):
    (tmp_path / "python3").symlink_to(sys.executable)
    run = make(tmp_path, "-n", "-B", "run").stdout
    test = make(tmp_path, "-n", "-B", "test").stdout
    assert "pip install --quiet -e ." in run and "[test]" not in run
    assert "[test]" in test
