"""run a provider's simulator: PROVIDER [ARGS...] (handlers.PROVIDER.sim.server's cli)"""

from __future__ import annotations

import argparse

from tickmesh.system import EXIT_USAGE, die, dispatch

PASS_THROUGH = True


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", metavar="PROVIDER")


def run(args: argparse.Namespace, rest: list[str]) -> None:
    if not args.provider.isidentifier():
        die(f"{args.provider!r} is not a provider name", EXIT_USAGE)
    dispatch(f"tickmesh.handlers.{args.provider}.sim.server", rest, f"unknown provider {args.provider!r}")
