"""validate CONFIG without starting anything: "ok", or every problem (exit 2)

Without a CONFIG, the one `tickmesh run` would run: config/default.toml if the current
directory has one, else the installed one.

The file's shape (supervisor.config), then each child's module and settings, each imported
within [supervisor] import_timeout, and the ports of every listener (supervisor.preflight).
Warnings (an unencrypted bus open to other machines) go to stderr, exit 0.
"""

from __future__ import annotations

import argparse
import sys

from tickmesh.supervisor import config, preflight
from tickmesh.system import EXIT_USAGE, die, load

DEFAULT_HELP = f"default: {config.DEFAULT_CONFIG} here, else the installed one"


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help=DEFAULT_HELP)


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    loaded, _ = checked(args.config or str(config.default_path()))
    print(f"ok: {loaded.path} ({len(loaded.processes)} processes)")


def checked(path: str) -> tuple[config.Config, preflight.Checked]:
    """The config at `path`, its children's modules and settings checked too (exit 2), and
    what their settings say (where they listen, the variables they read)."""
    loaded = load(path)
    for warning in config.warnings(loaded):
        print(f"tickmesh: warning: {loaded.path}: {warning}", file=sys.stderr)
    try:
        return loaded, preflight.check_children(loaded)
    except config.ConfigError as exc:
        die(str(exc), EXIT_USAGE)
