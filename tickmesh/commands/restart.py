"""have the running supervisor kill child NAME and start it again

Exit 1 if no supervisor answers, 3 if it refuses (no such child, or none running).
"""

from __future__ import annotations

import argparse

from supervisor.control import NoSupervisor, Refused, request_restart
from tickmesh.system import EXIT_NO_SUPERVISOR, EXIT_REFUSED, die, find


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("config", nargs="?")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    try:
        answer = request_restart(find(args.config)["control"], args.name, args.timeout)
    except NoSupervisor as exc:
        die(str(exc), EXIT_NO_SUPERVISOR)
    except Refused as exc:
        die(str(exc), EXIT_REFUSED)
    print(f"restarting {answer['child']} (pid {answer['pid']})")
