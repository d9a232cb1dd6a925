"""The `tickmesh` command: run, check and inspect a system; start a simulator or a tail.

    tickmesh run [CONFIG]               run the whole system under the supervisor
    tickmesh check CONFIG               validate a config: "ok", or every problem (exit 2);
                                        warnings (an unencrypted bus open to other machines)
                                        go to stderr, exit 0
    tickmesh keys DIR [--name NAME]     make a CURVE key pair: DIR/NAME.key, DIR/NAME.key_secret
    tickmesh status [CONFIG] [--json]   ask the running supervisor (exit 1 if none answers)
    tickmesh restart NAME [CONFIG]      have the supervisor kill child NAME and start it again
                                        (exit 1 if none answers, 3 if it refuses: no such
                                        child, or none running)
    tickmesh sim PROVIDER [ARGS...]     handlers.<PROVIDER>.sim.server's cli(ARGS)
    tickmesh tail PATTERN... [--config CONFIG]   consumers.tail's cli(ARGS)
    tickmesh book PROVIDER SYMBOL [--config CONFIG] [--depth N] [--json]   consumers.books' cli
    tickmesh consume MODULE:ATTR [--pattern P]... [--name NAME] [--config CONFIG]
                                        run a consumer: runtime.consumer's cli
    tickmesh replay PATH [--speed 1|10|max] [--filter P] [--from T] [--to T] [--live]
                                        consumers.replay's cli (a bus of its own by default)
    tickmesh export PATH --to parquet --out DIR   consumers.export's cli

`check` and `run` check every child's settings with the child's own settings class
(supervisor.preflight); `run` also checks that no other system holds the bus endpoints or the
simulators' ports. Without a CONFIG, `status`, `restart`, `tail`, `book` and `consume` find
the running system through its run dir (TICKMESH_RUN_DIR, or the default /tmp/tickmesh-UID),
from any directory. `run` without one uses config/default.toml here, or else the one of this
installation.
Handlers and consumers are imported only by name, when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

import uvloop

from bus import sockets
from runtime.logs import configure_logging
from supervisor import config, preflight
from supervisor.control import (ControlError, NoSupervisor, Refused, request_restart,
                                request_status)
from supervisor.loop import SYSTEM_FILE, Supervisor

DEFAULT_CONFIG = "config/default.toml"
INSTALLED_CONFIG = Path(__file__).resolve().parent.parent / DEFAULT_CONFIG
STATUS_COLUMNS = ("name", "state", "ready", "pid", "restarts", "uptime", "exit_code")
EXIT_NO_SUPERVISOR = 1
EXIT_TAKEN = 1  # another system holds what this one needs
EXIT_USAGE = 2
EXIT_REFUSED = 3  # the supervisor refused: no such child, or none running
BOOKS_MODULE = "consumers.books"
CONSUMER_MODULE = "runtime.consumer"


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("sim", "tail", "book", "consume", "replay", "export"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.handler(args, rest)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tickmesh", description="Market-data feed handlers "
                                     "on a ZeroMQ bus, run by a supervisor.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the system described by CONFIG")
    run.add_argument("config", nargs="?")
    run.set_defaults(handler=_run)
    check = commands.add_parser("check", help="validate CONFIG without starting anything")
    check.add_argument("config")
    check.set_defaults(handler=_check)
    keys = commands.add_parser("keys", help="make a CURVE key pair for a bus across machines")
    keys.add_argument("directory")
    keys.add_argument("--name", default=socket.gethostname(),
                      help="the key pair's name (default: this host's name)")
    keys.set_defaults(handler=_keys)
    status = commands.add_parser("status", help="ask the running supervisor for its children")
    status.add_argument("config", nargs="?")
    status.add_argument("--json", action="store_true", help="print the raw JSON answer")
    status.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")
    status.set_defaults(handler=_status)
    restart = commands.add_parser("restart", help="have the running supervisor restart a child")
    restart.add_argument("name")
    restart.add_argument("config", nargs="?")
    restart.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")
    restart.set_defaults(handler=_restart)
    sim = commands.add_parser("sim", add_help=False, help="run a provider's simulator: "
                              "PROVIDER [ARGS...]")
    sim.add_argument("provider", metavar="PROVIDER")
    sim.set_defaults(handler=_sim)
    tail = commands.add_parser("tail", add_help=False, help="print events from the bus: "
                               "PATTERN... [--config CONFIG] [--count N] [--json]")
    tail.add_argument("--config")
    tail.set_defaults(handler=_tail)
    book = commands.add_parser("book", add_help=False, help="print one book of the order-book "
                               "builder: PROVIDER SYMBOL [--config CONFIG] [--depth N] [--json]")
    book.add_argument("--config")
    book.set_defaults(handler=_book)
    consume = commands.add_parser("consume", add_help=False, help="run a consumer: "
                                  "MODULE:ATTR [--pattern P]... [--name NAME] [--config CONFIG]")
    consume.add_argument("--config")
    consume.set_defaults(handler=_consume)
    replay = commands.add_parser("replay", add_help=False, help="publish a recording onto a bus "
                                 "of its own: PATH [--speed 1|10|max] [--filter PATTERN] "
                                 "[--from TIME] [--to TIME] [--live [--config CONFIG]]")
    replay.add_argument("--live", action="store_true")
    replay.add_argument("--config")
    replay.set_defaults(handler=_replay)
    export = commands.add_parser("export", add_help=False, help="write a recording as Parquet "
                                 "tables: PATH --to parquet --out DIR")
    export.set_defaults(handler=_export)
    return parser


def _load(path: str) -> config.Config:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        _die(str(exc), EXIT_USAGE)


def _die(message: str, code: int) -> NoReturn:
    print(f"tickmesh: {message}", file=sys.stderr)
    sys.exit(code)


def _checked(path: str) -> tuple[config.Config, preflight.Checked]:
    """The config at `path`, its children's modules and settings checked too (exit 2), and
    what their settings say (where they listen, the variables they read)."""
    loaded = _load(path)
    for warning in config.warnings(loaded):
        print(f"tickmesh: warning: {loaded.path}: {warning}", file=sys.stderr)
    try:
        return loaded, preflight.check_children(loaded)
    except config.ConfigError as exc:
        _die(str(exc), EXIT_USAGE)


def _run(args: argparse.Namespace, _rest: list[str]) -> None:
    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else str(INSTALLED_CONFIG))
    loaded, checked = _checked(path)
    try:
        preflight.check_machine(loaded, checked.listens)
    except config.ConfigError as exc:
        _die(str(exc), EXIT_TAKEN)
    configure_logging("supervisor")
    try:
        uvloop.run(Supervisor(loaded, checked.variables).run())
    except ControlError as exc:
        _die(str(exc), 1)


def _check(args: argparse.Namespace, _rest: list[str]) -> None:
    loaded, _ = _checked(args.config)
    print(f"ok: {loaded.path} ({len(loaded.processes)} processes)")


def _keys(args: argparse.Namespace, _rest: list[str]) -> None:
    if "/" in args.name or args.name.strip(".") == "":
        _die(f"--name: {args.name!r} is not a file name", EXIT_USAGE)
    public, secret = sockets.create_keys(args.directory, args.name)
    print(f"public key: {public}  (copy it into the forwarder's authorized_keys directory, and, "
          "for the forwarder's own pair, to every machine as server_key_file)")
    print(f"secret key: {secret}  (keep it on this machine only: client_key_file, or the "
          "forwarder's server_key_file)")


def _status(args: argparse.Namespace, _rest: list[str]) -> None:
    try:
        status = request_status(_system(args.config)["control"], args.timeout)
    except NoSupervisor as exc:
        _die(str(exc), EXIT_NO_SUPERVISOR)
    print(json.dumps(status, indent=2) if args.json else _table(status))


def _restart(args: argparse.Namespace, _rest: list[str]) -> None:
    try:
        answer = request_restart(_system(args.config)["control"], args.name, args.timeout)
    except NoSupervisor as exc:
        _die(str(exc), EXIT_NO_SUPERVISOR)
    except Refused as exc:
        _die(str(exc), EXIT_REFUSED)
    print(f"restarting {answer['child']} (pid {answer['pid']})")


def _table(status: dict[str, Any]) -> str:
    rows = [STATUS_COLUMNS]
    for name, child in status["children"].items():
        values = [name] + [child[key] for key in STATUS_COLUMNS[1:]]
        rows.append(tuple(_cell(value) for value in values))
    widths = [max(len(row[i]) for row in rows) for i in range(len(STATUS_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    return f"supervisor pid {status['pid']}, config {status['config']}\n" + "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def _sim(args: argparse.Namespace, rest: list[str]) -> None:
    if not args.provider.isidentifier():
        _die(f"{args.provider!r} is not a provider name", EXIT_USAGE)
    _dispatch(f"handlers.{args.provider}.sim.server", rest, f"unknown provider {args.provider!r}")


def _system(path: str | None) -> dict[str, Any]:
    """The endpoints of the system `path` describes, or else of the one running in the run
    dir (exit 1 if there is none)."""
    if path:
        loaded = _load(path)
        system = {"control": loaded.control, "bus": loaded.bus.to_dict()}
    else:
        run_dir = os.environ.get(config.RUN_DIR_ENV) or config.DEFAULT_RUN_DIR.replace(
            "{uid}", str(os.getuid()))
        try:
            system = json.loads((Path(run_dir) / SYSTEM_FILE).read_text())
        except (OSError, ValueError):
            _die(f"no running system found in {run_dir} (start one with `tickmesh run`, or "
                 "name its config)", EXIT_NO_SUPERVISOR)
        if not isinstance(system, dict) or not {"config", "control", "bus"} <= system.keys():
            _die(f"{run_dir}/{SYSTEM_FILE} does not describe a running system (name its "
                 "config instead)", EXIT_NO_SUPERVISOR)
    sockets.use(sockets.BusConfig.from_dict(system["bus"]))  # its keys, with CURVE on
    return system


def _tail(args: argparse.Namespace, rest: list[str]) -> None:
    endpoint = _system(args.config)["bus"]["subscribe"]
    _dispatch("consumers.tail", ["--endpoint", endpoint, *rest], "the tail consumer is not installed")


def _consume(args: argparse.Namespace, rest: list[str]) -> None:
    bus = _system(args.config)["bus"]
    _dispatch(CONSUMER_MODULE, ["--bus", json.dumps(bus), *rest], "the consumer SDK is missing")


def _replay(args: argparse.Namespace, rest: list[str]) -> None:
    """Onto a bus of its own, unless --live names the running system's (or --config's)."""
    live = ["--publish", _system(args.config)["bus"]["publish"]] if args.live else []
    _dispatch("consumers.replay", [*rest, *live], "the replay is not installed")


def _export(_args: argparse.Namespace, rest: list[str]) -> None:
    _dispatch("consumers.export", rest, "the export is not installed")


def _book(args: argparse.Namespace, rest: list[str]) -> None:
    endpoint = _builder_endpoint(args.config)
    _dispatch(BOOKS_MODULE, ["--endpoint", endpoint, *rest], "the book builder is not installed")


def _builder_endpoint(path: str | None) -> str:
    """The snapshot_endpoint of the config's book builder (the config of the running system
    without `path`); exit 1 if it has none."""
    loaded = _load(path or _system(None)["config"])
    for child in loaded.children:
        if child.run == BOOKS_MODULE and isinstance(child.settings.get("snapshot_endpoint"), str):
            return child.settings["snapshot_endpoint"]
    _die(f"{loaded.path}: no book builder (a child with run = \"{BOOKS_MODULE}\" and its "
         "snapshot_endpoint)", EXIT_NO_SUPERVISOR)


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
