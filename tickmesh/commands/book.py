"""print one book of the order-book builder: PROVIDER SYMBOL [--depth N] [--json]

The builder is the config's child with run = "tickmesh.consumers.books" (--config CONFIG, or the
running system's); its snapshot service answers (consumers.books.snapshots). The book is
printed as JSON when asked or when stdout is not a terminal, else as a table. Exit 1: no
builder in the config, or none answered; 3: it has no such book.
"""

from __future__ import annotations

import argparse
import json
import sys

from tickmesh.system import EXIT_NO_SUPERVISOR, EXIT_REFUSED, die, find, load

BOOKS_MODULE = "tickmesh.consumers.books"
EXIT_NO_BUILDER = EXIT_NO_SUPERVISOR
EXIT_UNKNOWN_BOOK = EXIT_REFUSED


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider")
    parser.add_argument("symbol")
    parser.add_argument("--config", help="the system's config (default: the one running in the "
                        "run dir)")
    parser.add_argument("--depth", type=int, default=10, help="levels a side (0: all; 10)")
    parser.add_argument("--json", action="store_true", help="print the builder's JSON answer")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    from tickmesh.consumers.books import snapshots  # loaded by the command that runs it alone

    endpoint = builder_endpoint(args.config)
    try:
        book = snapshots.request_book(endpoint, args.provider, args.symbol, args.depth,
                                      args.timeout)
    except snapshots.NoBuilder as exc:
        die(str(exc), EXIT_NO_BUILDER)
    if "error" in book:
        unknown = book.get("reason") == snapshots.UNKNOWN_BOOK
        die(str(book["error"]), EXIT_UNKNOWN_BOOK if unknown else EXIT_NO_BUILDER)
    print(json.dumps(book) if args.json or not sys.stdout.isatty()
          else snapshots.format_table(book))


def builder_endpoint(path: str | None) -> str:
    """The snapshot_endpoint of the config's book builder (the config of the running system
    without `path`); exit 1 if it has none."""
    loaded = load(path or find(None)["config"])
    for child in loaded.children:
        if child.run == BOOKS_MODULE and isinstance(child.settings.get("snapshot_endpoint"), str):
            return child.settings["snapshot_endpoint"]
    die(f"{loaded.path}: no book builder (a child with run = \"{BOOKS_MODULE}\" and its "
        "snapshot_endpoint)", EXIT_NO_SUPERVISOR)
