"""have the running supervisor read its config again and apply what changed among the children

The supervisor checks its config file as `tickmesh check` does; then it stops and drops the
children the file no longer has, restarts those whose entries changed (settings included),
starts the new ones, and leaves the others running. It changes nothing, and says why, if the
file has problems or its [bus] or [supervisor] changed (those need a restart of the system).
Given a CONFIG, it reloads it only if it is the file the running system reads (the same once
resolved, or the same content); another file is refused, naming the one running and how to
switch to the other (stop the system, then `tickmesh run CONFIG`).

Exit 1 if no supervisor answers, 2 if the config has problems or is not the running system's,
3 if it refuses otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tickmesh.system import ANSWER_SECONDS, ask, control_arguments, find

TIMEOUT = 60.0
CHANGES = ("added", "removed", "changed", "unchanged")


def arguments(parser: argparse.ArgumentParser) -> None:
    control_arguments(parser, TIMEOUT, "the check and the changes")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    system = find(args.config)
    ask(system, "status", min(args.timeout, ANSWER_SECONDS))  # is anyone there? (quickly)
    named = f" {Path(args.config).absolute()}" if args.config else ""
    answer = ask(system, f"reload{named}", args.timeout, args.json)
    if not args.json:
        print(f"reloaded {answer['config']}")
        for key in CHANGES:
            print(f"  {key + ':':10} {', '.join(answer[key]) or '-'}")

