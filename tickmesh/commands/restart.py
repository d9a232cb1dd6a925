"""have the running supervisor kill child NAME and start it again

Exit 1 if no supervisor answers, 2 if it has no child NAME, 3 if it refuses (NAME has no
process running).
"""

from __future__ import annotations

import argparse

from tickmesh.system import ANSWER_SECONDS, ask, control_arguments, find


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    control_arguments(parser, ANSWER_SECONDS, "the answer")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    answer = ask(find(args.config), f"restart {args.name}", args.timeout, args.json)
    if not args.json:
        print(f"restarting {answer['child']} (pid {answer['pid']})")
