"""write the configs tickmesh ships into DIR, for editing: default.toml and the live examples

DIR is made if need be. Nothing is overwritten: if DIR already holds one of the files, nothing
is written (exit 1). `tickmesh init config` in a project's directory gives `tickmesh run` and
`tickmesh check` there a config/default.toml of their own to run.
"""

from __future__ import annotations

import argparse
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from tickmesh.supervisor.config import SHIPPED_CONFIGS
from tickmesh.system import EXIT_TAKEN, die


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="where to write them (made if need be)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    target = Path(args.dir)
    configs = shipped()
    taken = [config.name for config in configs if (target / config.name).exists()]
    if taken:
        die(f"{target} already holds {', '.join(taken)}: nothing written (move them away, or "
            "name another DIR)", EXIT_TAKEN)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for config in configs:
            with (target / config.name).open("x") as out:
                out.write(config.read_text())
    except OSError as exc:
        die(f"{exc.filename}: {exc.strerror}", EXIT_TAKEN)
    print("\n".join(str(target / config.name) for config in configs))
    print(f"run one: tickmesh run {target / 'default.toml'}")


def shipped() -> list[Traversable]:
    """The configs of the tickmesh.config package, by name: the demo and the live examples."""
    return sorted((entry for entry in resources.files(SHIPPED_CONFIGS).iterdir()
                   if entry.name.endswith(".toml")), key=lambda entry: entry.name)
