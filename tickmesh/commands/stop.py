"""stop child NAME and keep it stopped, or without NAME the whole system

`tickmesh stop NAME`: the supervisor stops the child (SIGTERM, then SIGKILL after its
shutdown_timeout) and holds it stopped, whatever its restart policy, until `tickmesh start
NAME`. `tickmesh stop`: it stops every child in reverse order and exits, as on SIGTERM. Either
way the command waits until the process is gone. A child's name has no dot nor slash, so
`tickmesh stop CONFIG` is the whole system of that config.

Exit 1 if no supervisor answers, 2 if it has no child NAME, 3 if it refuses (NAME is not
running, or is the forwarder), 4 if the process is still there after --timeout seconds.
"""

from __future__ import annotations

import argparse

from tickmesh.system import (ANSWER_SECONDS, EXIT_TIMED_OUT, ask, control_arguments, die, find,
                             wait_gone)

TIMEOUT = 30.0


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the child to stop (default: the whole system)")
    control_arguments(parser, TIMEOUT, "the stop")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    name, config = _name_and_config(args.name, args.config)
    system = find(config)
    answer = ask(system, f"stop {name}" if name else "stop", min(args.timeout, ANSWER_SECONDS),
                 args.json)
    pid = answer["pid"]  # None: a child with no process (about to restart, or not started)
    if pid is not None and not wait_gone(pid, args.timeout):
        die(f"{name or 'the supervisor'} (pid {pid}) is still stopping after "
            f"{args.timeout:g} s", EXIT_TIMED_OUT)
    if not args.json:
        print(_stopped(name, pid, system["run_dir"]))


def _name_and_config(name: str | None, config: str | None) -> tuple[str | None, str | None]:
    """`stop CONFIG` names no child: a child's name is [a-z0-9_-]+, never a path."""
    if name is not None and config is None and ("." in name or "/" in name):
        return None, name
    return name, config


def _stopped(name: str | None, pid: int | None, run_dir: str) -> str:
    if name is None:
        return f"stopped the system: its supervisor (pid {pid}) has exited (run dir {run_dir})"
    return f"stopped {name}" + (f" (pid {pid})" if pid else " (it had no process)")
