"""run the system described by CONFIG (default: config/default.toml) under the supervisor

The config is checked first as `tickmesh check` checks it (exit 2: each child's module and
settings, by the child's own settings class, no two listeners on one port: supervisor.preflight),
and the bus endpoints, the ports the children listen on and the Prometheus endpoint's port must
be free (exit 1 if another system, or program, holds them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvloop

from tickmesh.supervisor import config, preflight
from tickmesh.supervisor.control import ControlError
from tickmesh.supervisor.loop import Supervisor
from tickmesh.supervisor.observer import MetricsError
from tickmesh.commands.check import checked
from tickmesh.system import DEFAULT_CONFIG, EXIT_TAKEN, INSTALLED_CONFIG, die


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists()
                           else str(INSTALLED_CONFIG))
    loaded, found = checked(path)
    try:
        preflight.check_machine(loaded, found.listens)
    except config.ConfigError as exc:
        die(str(exc), EXIT_TAKEN)
    try:
        supervisor = Supervisor(loaded, found.variables)
    except OSError as exc:  # its log dir cannot be made
        die(f"{loaded.path}: supervisor.log_dir: {exc}", EXIT_TAKEN)
    try:
        uvloop.run(supervisor.run())
    except (ControlError, MetricsError) as exc:
        die(str(exc), EXIT_TAKEN)
