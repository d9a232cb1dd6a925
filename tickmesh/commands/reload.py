"""have the running supervisor read its config again and apply what changed among the children

The supervisor checks its config file as `tickmesh check` does; then it stops and drops the
children the file no longer has, restarts those whose entries changed (settings included),
starts the new ones, and leaves the others running. It changes nothing, and says why, if the
file has problems or its [bus] or [supervisor] changed (those need a restart of the system).

Exit 1 if no supervisor answers, 2 if the config has problems, 3 if it refuses otherwise.
"""

from __future__ import annotations

import argparse

from tickmesh.system import ANSWER_SECONDS, ask, control_arguments, find

TIMEOUT = 60.0
CHANGES = ("added", "removed", "changed", "unchanged")


def arguments(parser: argparse.ArgumentParser) -> None:
    control_arguments(parser, TIMEOUT, "the check and the changes")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    system = find(args.config)
    ask(system, "status", min(args.timeout, ANSWER_SECONDS))  # is anyone there? (quickly)
    answer = ask(system, "reload", args.timeout, args.json)
    if not args.json:
        print(f"reloaded {answer['config']}")
        for key in CHANGES:
            print(f"  {key + ':':10} {', '.join(answer[key]) or '-'}")
