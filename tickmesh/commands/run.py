"""run the system described by CONFIG under the supervisor

Without a CONFIG: config/default.toml if the current directory has one, else the installed
demo config (every provider on its simulator), from any directory.

The config is checked first as `tickmesh check` checks it (exit 2: each child's module and
settings, by the child's own settings class, no two listeners on one port: supervisor.preflight),
and the bus endpoints, the ports the children listen on and the Prometheus endpoint's port must
be free (exit 1 if another system, or program, holds them).
"""

from __future__ import annotations

import argparse

import uvloop

from tickmesh.supervisor import config, preflight
from tickmesh.supervisor.control import ControlError
from tickmesh.supervisor.loop import Supervisor
from tickmesh.supervisor.observer import MetricsError
from tickmesh.commands.check import DEFAULT_HELP, checked
from tickmesh.system import EXIT_TAKEN, die


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help=DEFAULT_HELP)


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    loaded, found = checked(args.config or str(config.default_path()))
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
