"""What the commands share: exit codes, failing with a message, loading a config, finding
the running system (its control and bus endpoints) from a config or from its run dir, asking
its supervisor, and waiting for a process to end.

Without a CONFIG, a command finds the running system through `system.json` in its run dir
(TICKMESH_RUN_DIR, or the default /tmp/tickmesh-UID), from any directory: bus.endpoints, the
lookup a Subscriber given no endpoint makes too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import sys
from typing import Any, NoReturn

from tickmesh.bus import endpoints, sockets
from tickmesh.supervisor import config, control

EXIT_NO_SUPERVISOR = 1
EXIT_TAKEN = 1  # another system holds what this one needs
EXIT_USAGE = 2  # a bad config, an unknown child or provider
EXIT_REFUSED = 3  # the supervisor refused: e.g. nothing to restart
EXIT_TIMED_OUT = 4  # the supervisor agreed, but what it does took longer than --timeout
# refusals that exit EXIT_USAGE: an unknown child, a bad config, reload of another file
USAGE_REASONS = {control.UNKNOWN_CHILD, control.BAD_CONFIG, control.OTHER_CONFIG}
ANSWER_SECONDS = 2.0  # how long to wait for an answer the supervisor gives at once


def die(message: str, code: int) -> NoReturn:
    print(f"tickmesh: {message}", file=sys.stderr)
    sys.exit(code)


def load(path: str) -> config.Config:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        die(str(exc), EXIT_USAGE)


def find(path: str | None) -> dict[str, Any]:
    """The endpoints (and log dir) of the system `path` describes, or else of the one running
    in the run dir (exit 1 naming the run dir if there is none); the bus's CURVE keys are put
    to use."""
    if path:
        loaded = load(path)
        system = {"config": str(loaded.path), "control": loaded.control,
                  "bus": loaded.bus.to_dict(), "run_dir": str(loaded.run_dir),
                  "log_dir": str(loaded.log_dir) if loaded.log_dir else None}
    else:
        try:
            system = endpoints.running_system()
        except endpoints.NoSystem as exc:
            die(f"{exc.problem} (start one with `tickmesh run`, set {endpoints.RUN_DIR_ENV} to "
                "the run dir of the one running, or name its config)", EXIT_NO_SUPERVISOR)
    sockets.use(sockets.BusConfig.from_dict(system["bus"]))  # its keys, with CURVE on
    return system


def control_arguments(parser: argparse.ArgumentParser, timeout: float, waits_for: str) -> None:
    """The arguments of a command that asks the supervisor: CONFIG, --json, --timeout."""
    parser.add_argument("config", nargs="?", help="the system's config (default: the one "
                        "running in the run dir)")
    parser.add_argument("--json", action="store_true", help="print the supervisor's answer "
                        "as JSON")
    parser.add_argument("--timeout", type=float, default=timeout,
                        help=f"seconds to wait for {waits_for} ({timeout:g})")


def ask(system: dict[str, Any], request: str, timeout: float,
        show: bool = False) -> dict[str, Any]:
    """The answer of the system's supervisor to `request` (printed as JSON if `show`). Exits 1
    if none comes within `timeout` s, naming the run dir tried; 2 if the request names an
    unknown child, the config has problems or is not the running system's; 3 for any other
    refusal."""
    try:
        answer = control.request(system["control"], request.encode(), timeout)
    except control.NoSupervisor as exc:
        die(f"{exc} (tried the system of run dir {system['run_dir']}: is it running?)",
            EXIT_NO_SUPERVISOR)
    if show:
        print(json.dumps(answer, indent=2))
    if "error" in answer:
        code = EXIT_USAGE if answer.get("reason") in USAGE_REASONS else EXIT_REFUSED
        die(str(answer["error"]), code)
    return answer


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait at most `timeout` s for the process `pid` (any, not only a child of this one) to
    end; True once it has. Linux: a pidfd."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    return bool(readable)


def dispatch(module_name: str, argv: list[str], unknown: str) -> None:
    """Import `module_name` and hand `argv` to its cli()."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise  # the module exists; something it imports is missing
        die(f"{unknown} (no module {module_name})", EXIT_USAGE)
    if not callable(getattr(module, "cli", None)):
        die(f"{module_name} has no cli(argv)", EXIT_USAGE)
    module.cli(argv)
