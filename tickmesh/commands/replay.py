"""publish a recording onto a bus of its own (--live: the running system's): PATH ...

    tickmesh replay PATH [--speed 1|10|max] [--filter PATTERN] [--from TIME] [--to TIME]
                    [--live [--config CONFIG]]
"""

from __future__ import annotations

import argparse

from tickmesh.system import dispatch, find

PASS_THROUGH = True


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--config")


def run(args: argparse.Namespace, rest: list[str]) -> None:
    live = ["--publish", find(args.config)["bus"]["publish"]] if args.live else []
    dispatch("tickmesh.consumers.recorder.playback", [*rest, *live], "the replay is not installed")
