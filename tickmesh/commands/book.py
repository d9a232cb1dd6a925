"""print one book of the order-book builder: PROVIDER SYMBOL [--depth N] [--json]

The builder is the config's child with run = "tickmesh.consumers.books" (--config CONFIG, or the
running system's).
"""

from __future__ import annotations

import argparse

from tickmesh.system import EXIT_NO_SUPERVISOR, die, dispatch, find, load

PASS_THROUGH = True
BOOKS_MODULE = "tickmesh.consumers.books"


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config")


def run(args: argparse.Namespace, rest: list[str]) -> None:
    endpoint = builder_endpoint(args.config)
    dispatch(f"{BOOKS_MODULE}.builder", ["--endpoint", endpoint, *rest], "the book builder is not installed")


def builder_endpoint(path: str | None) -> str:
    """The snapshot_endpoint of the config's book builder (the config of the running system
    without `path`); exit 1 if it has none."""
    loaded = load(path or find(None)["config"])
    for child in loaded.children:
        if child.run == BOOKS_MODULE and isinstance(child.settings.get("snapshot_endpoint"), str):
            return child.settings["snapshot_endpoint"]
    die(f"{loaded.path}: no book builder (a child with run = \"{BOOKS_MODULE}\" and its "
        "snapshot_endpoint)", EXIT_NO_SUPERVISOR)
