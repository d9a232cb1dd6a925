"""have the running supervisor start child NAME (one stopped, exited or failed) now

Exit 1 if no supervisor answers, 2 if it has no child NAME, 3 if it refuses (NAME is already
started, or about to restart).
"""

from __future__ import annotations

import argparse

from tickmesh.system import ANSWER_SECONDS, ask, control_arguments, find


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    control_arguments(parser, ANSWER_SECONDS, "the answer")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    answer = ask(find(args.config), f"start {args.name}", args.timeout, args.json)
    if not args.json:
        print(f"starting {answer['child']}")
