"""The `tickmesh` command: run, check and inspect a system; start a simulator or a tail.

    tickmesh run [CONFIG]               run the whole system under the supervisor
    tickmesh check CONFIG               validate a config: "ok", or every problem (exit 2)
    tickmesh status [CONFIG] [--json]   ask the running supervisor (exit 1 if none answers)
    tickmesh sim PROVIDER [ARGS...]     handlers.<PROVIDER>.simulator's cli(ARGS)
    tickmesh tail PATTERN... [--config CONFIG]   consumers.tail's cli(ARGS)

Handlers and consumers are imported only by name, when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, NoReturn

import uvloop

from bus.process import configure_logging
from supervisor import config
from supervisor.control import ControlError, NoSupervisor, request_status
from supervisor.loop import Supervisor

DEFAULT_CONFIG = "config/default.toml"
STATUS_COLUMNS = ("name", "state", "pid", "restarts", "uptime", "exit_code")
EXIT_NO_SUPERVISOR = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("sim", "tail"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.handler(args, rest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickmesh", description="Market-data feed handlers "
                                     "on a ZeroMQ bus, run by a supervisor.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the system described by CONFIG")
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    run.set_defaults(handler=_run)
    check = commands.add_parser("check", help="validate CONFIG without starting anything")
    check.add_argument("config")
    check.set_defaults(handler=_check)
    status = commands.add_parser("status", help="ask the running supervisor for its children")
    status.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    status.add_argument("--json", action="store_true", help="print the raw JSON answer")
    status.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")
    status.set_defaults(handler=_status)
    sim = commands.add_parser("sim", add_help=False, help="run a provider's simulator: "
                              "PROVIDER [ARGS...]")
    sim.add_argument("provider", metavar="PROVIDER")
    sim.set_defaults(handler=_sim)
    tail = commands.add_parser("tail", add_help=False, help="print events from the bus: "
                               "PATTERN... [--config CONFIG] [--count N] [--json]")
    tail.add_argument("--config", default=DEFAULT_CONFIG)
    tail.set_defaults(handler=_tail)
    return parser


def _load(path: str) -> config.Config:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        _die(str(exc), EXIT_USAGE)


def _die(message: str, code: int) -> NoReturn:
    print(f"tickmesh: {message}", file=sys.stderr)
    sys.exit(code)


def _run(args: argparse.Namespace, _rest: list[str]) -> None:
    loaded = _load(args.config)
    configure_logging("supervisor")
    try:
        uvloop.run(Supervisor(loaded).run())
    except ControlError as exc:
        _die(str(exc), 1)


def _check(args: argparse.Namespace, _rest: list[str]) -> None:
    loaded = _load(args.config)
    print(f"ok: {loaded.path} ({len(loaded.processes)} processes)")


def _status(args: argparse.Namespace, _rest: list[str]) -> None:
    try:
        status = request_status(_load(args.config).control, args.timeout)
    except NoSupervisor as exc:
        _die(str(exc), EXIT_NO_SUPERVISOR)
    print(json.dumps(status, indent=2) if args.json else _table(status))


def _table(status: dict[str, Any]) -> str:
    rows = [STATUS_COLUMNS]
    for name, child in status["children"].items():
        values = [name] + [child[key] for key in STATUS_COLUMNS[1:]]
        rows.append(tuple("-" if value is None else str(value) for value in values))
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATUS_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    return f"supervisor pid {status['pid']}, config {status['config']}\n" + "\n".join(lines)


def _sim(args: argparse.Namespace, rest: list[str]) -> None:
    if not args.provider.isidentifier():
        _die(f"{args.provider!r} is not a provider name", EXIT_USAGE)
    _dispatch(f"handlers.{args.provider}.simulator", rest, f"unknown provider {args.provider!r}")


def _tail(args: argparse.Namespace, rest: list[str]) -> None:
    endpoint = _load(args.config).bus.subscribe
    _dispatch("consumers.tail", ["--endpoint", endpoint, *rest], "the tail consumer is not installed")


def _dispatch(module_name: str, argv: list[str], unknown: str) -> None:
    """Import `module_name` and hand `argv` to its cli()."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise  # the module exists; something it imports is missing
        _die(f"{unknown} (no module {module_name})", EXIT_USAGE)
    if not callable(getattr(module, "cli", None)):
        _die(f"{module_name} has no cli(argv)", EXIT_USAGE)
    module.cli(argv)


if __name__ == "__main__":
    main()
