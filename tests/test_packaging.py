"""One import name: every module is `tickmesh.<package>`, the repository's top-level folders
mapped into it (pyproject.toml), and nothing of ours imports a top-level bus, runtime,
handlers, consumers, supervisor or examples."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

from tests.conftest import REPO

OLD_NAMES = ("bus", "runtime", "handlers", "consumers", "supervisor", "examples")


def setuptools_table() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_a_listed_tickmesh_package():
    table = setuptools_table()
    expected = set()
    for package, folder in table["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            expected.add(".".join((package, *init.parent.relative_to(REPO / folder).parts)))
    assert set(table["packages"]) == expected
    assert all(name == "tickmesh" or name.startswith("tickmesh.") for name in expected)


def test_no_module_imports_a_top_level_name_of_ours():
    offenders = []
    for path in REPO.rglob("*.py"):
        if any(part.startswith(".") for part in path.relative_to(REPO).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(REPO)}: {name}" for name in names
                          if name.split(".")[0] in OLD_NAMES]
    assert offenders == []


def test_a_config_naming_a_module_by_its_old_name_is_told_the_new_one(run_dir):
    config = run_dir / "old.toml"
    config.write_text('[[children]]\nname = "alpaca-sim"\nrun = "handlers.alpaca.sim.server"\n')
    done = subprocess.run([sys.executable, "-m", "tickmesh.cli", "check", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=run_dir)
    assert done.returncode != 0
    assert "no module named 'handlers.alpaca.sim.server'" in done.stderr
    assert "write 'tickmesh.handlers.alpaca.sim.server'" in done.stderr
