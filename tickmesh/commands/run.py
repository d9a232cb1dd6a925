"""run the system described by CONFIG (default: config/default.toml) under the supervisor

Every child's settings are checked first with the child's own settings class
(supervisor.preflight), and the bus endpoints and simulator ports must be free (exit 1 if
another system holds them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvloop

from runtime.logs import configure_logging
from supervisor import config, preflight
from supervisor.control import ControlError
from supervisor.loop import Supervisor
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
    configure_logging("supervisor")
    try:
        uvloop.run(Supervisor(loaded, found.variables).run())
    except ControlError as exc:
        die(str(exc), EXIT_TAKEN)
