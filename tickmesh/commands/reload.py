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
import json
from pathlib import Path
from typing import Any

from tickmesh.supervisor import control
from tickmesh.system import (ANSWER_SECONDS, EXIT_NO_SUPERVISOR, EXIT_REFUSED, EXIT_USAGE,
                             USAGE_REASONS, ask, control_arguments, die, find)

TIMEOUT = 60.0
CHANGES = ("added", "removed", "changed", "unchanged")


def arguments(parser: argparse.ArgumentParser) -> None:
    control_arguments(parser, TIMEOUT, "the check and the changes")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    system = find(args.config)
    ask(system, "status", min(args.timeout, ANSWER_SECONDS))  # is anyone there? (quickly)
    named = f" {Path(args.config).absolute()}" if args.config else ""
    answer = ask_reload(system, f"reload{named}", args.timeout, args.json)
    if not args.json:
        print(f"reloaded {answer['config']}")
        for key in CHANGES:
            print(f"  {key + ':':10} {', '.join(answer[key]) or '-'}")


def ask_reload(system: dict[str, Any], request: str, timeout: float,
               show: bool) -> dict[str, Any]:
    """system.ask, but a refusal to reload another file than the running system's exits 2 (a
    usage error), as a bad config does."""
    try:
        answer = control.request(system["control"], request.encode(), timeout)
    except control.NoSupervisor as exc:
        die(f"{exc} (tried the system of run dir {system['run_dir']}: is it running?)",
            EXIT_NO_SUPERVISOR)
    if show:
        print(json.dumps(answer, indent=2))
    if "error" in answer:
        usage = answer.get("reason") in {*USAGE_REASONS, control.OTHER_CONFIG}
        die(str(answer["error"]), EXIT_USAGE if usage else EXIT_REFUSED)
    return answer
