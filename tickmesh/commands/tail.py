"""print events from the bus: PATTERN... [--config CONFIG] [--count N] [--json]

Each PATTERN is kind[.provider[.SYMBOL]], each part a name or * (default: trade quote), on
the bus of the running system (or of CONFIG's). JSON lines when stdout is a pipe or a file, a
compact line on a terminal; the gaps this subscriber saw, and publishers gone, on stderr
(consumers.tail). Exit 2: a bad pattern, or an unknown kind. A provider or symbol that the
system does not publish (by its config: its handlers and their symbols), and a symbol in lower
case, are warned about on stderr (tickmesh.tailing); tail waits for them all the same.

The kinds: {kinds}.
"""

from __future__ import annotations

import argparse
import sys

from tickmesh.bus.sockets import BusConfig
from tickmesh.bus.topics import TopicError
from tickmesh.tailing import KINDS, check_pattern, unpublished
from tickmesh.supervisor import config as configs
from tickmesh.system import find

__doc__ = __doc__.replace("{kinds}", ", ".join(KINDS))


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

    system = find(args.config)
    for warning in unpublished(args.patterns, _children(system.get("config"))):
        print(f"tickmesh tail: warning: {warning}", file=sys.stderr, flush=True)
    print_events(BusConfig.from_dict(system["bus"]).subscribe_endpoints, args.patterns,
                 args.count, args.json)


def _children(path: str | None) -> tuple[configs.ChildConfig, ...] | None:
    """The children of the system's config; None if it cannot be read (nothing is known)."""
    if not path:
        return None
    try:
        return configs.load(path).children
    except (configs.ConfigError, OSError):
        return None


def pattern(text: str) -> str:
    """A subscription pattern, checked: well formed, of a known kind."""
    try:
        check_pattern(text)
    except TopicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
