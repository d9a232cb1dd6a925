"""print events from the bus: PATTERN... [--config CONFIG] [--count N] [--json]"""

from __future__ import annotations

import argparse

from tickmesh.system import dispatch, find

PASS_THROUGH = True


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config")


def run(args: argparse.Namespace, rest: list[str]) -> None:
    endpoint = find(args.config)["bus"]["subscribe"]
    dispatch("tickmesh.consumers.tail", ["--endpoint", endpoint, *rest], "the tail consumer is not installed")
