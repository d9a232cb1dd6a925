"""run a consumer: MODULE:ATTR [--pattern P]... [--name NAME] [--config CONFIG]"""

from __future__ import annotations

import argparse
import json

from tickmesh.system import dispatch, find

PASS_THROUGH = True


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config")


def run(args: argparse.Namespace, rest: list[str]) -> None:
    bus = find(args.config)["bus"]
    dispatch("tickmesh.runtime.consumer", ["--bus", json.dumps(bus), *rest], "the consumer SDK is missing")
