"""The `tickmesh` command: one subcommand per module of tickmesh.commands (a new command is a
new file there); `tickmesh --help` lists them, `tickmesh COMMAND --help` tells one's arguments.

Handlers and consumers are imported only by name, when the command that runs them runs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType

from tickmesh import commands

EXIT_READER_GONE = 1  # stdout's reader closed it (the convention of Python's docs)


def main(argv: list[str] | None = None) -> None:
    parser, modules = _parser()
    args, rest = parser.parse_known_args(argv)
    module = modules[args.command]
    if rest and not getattr(module, "PASS_THROUGH", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        module.run(args, rest)
        sys.stdout.flush()
    except BrokenPipeError:  # `tickmesh status | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nor at exit
        sys.exit(EXIT_READER_GONE)


def command_modules() -> dict[str, ModuleType]:
    """Every command's module, by the command's name."""
    return {info.name: importlib.import_module(f"{commands.__name__}.{info.name}")
            for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")}


def _parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(prog="tickmesh", description="Market-data feed handlers "
                                     "on a ZeroMQ bus, run by a supervisor.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = command_modules()
    for name, module in modules.items():
        doc = (module.__doc__ or "").strip()
        passes = getattr(module, "PASS_THROUGH", False)
        sub = subparsers.add_parser(name, help=doc.splitlines()[0] if doc else None,
                                    description=doc, add_help=not passes,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.arguments(sub)
    return parser, modules


if __name__ == "__main__":
    main()
