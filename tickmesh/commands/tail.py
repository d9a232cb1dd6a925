"""print events from the bus: PATTERN... [--config CONFIG] [--count N] [--json]

Each PATTERN is kind[.provider[.SYMBOL]], each part a name or * (default: trade quote), on
the bus of the running system (or of CONFIG's). JSON lines when stdout is a pipe or a file, a
compact line on a terminal; the gaps this subscriber saw, and publishers gone, on stderr
(consumers.tail). Exit 2: a bad pattern.
"""

from __future__ import annotations

import argparse

from tickmesh.bus.topics import Pattern, TopicError
from tickmesh.system import find


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", type=pattern, metavar="PATTERN",
                        help="kind[.provider[.SYMBOL]], each part a name or * (default: trade "
                        "quote)")
    parser.add_argument("--config", help="the system's config (default: the one running in the "
                        "run dir)")
    parser.add_argument("--count", type=int, default=0, help="stop after N events")
    parser.add_argument("--json", action="store_true", help="JSON lines even on a terminal")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    from tickmesh.consumers.tail import print_events  # loaded by the command that runs it alone

    endpoint = find(args.config)["bus"]["subscribe"]
    print_events(endpoint, args.patterns, args.count, args.json)


def pattern(text: str) -> str:
    """A subscription pattern, checked."""
    try:
        Pattern.parse(text)
    except TopicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
