"""Checking children before anything starts, by module name: `python -m runtime.check` reads
a JSON list of children ({"where", "run", "settings"}) on stdin and prints a JSON answer:
{"problems": [...], "listens": [[where, host, port], ...]}.

For each child: the module must exist and have `main()`; its settings table is read by the
module's own `Settings` class (None or absent: no settings), the same class the child reads it
with (runtime.process); a settings object with a `listen_address()` method (a simulator's)
says where it will listen. It runs in a process of its own so that the supervisor never
imports a child's code.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from runtime.process import read_settings
from runtime.settings import SettingsError


def check(where: str, run: str, raw: dict[str, Any]) -> tuple[list[str], list[list]]:
    """(problems, listen addresses) of one child."""
    try:
        module = importlib.import_module(run)
    except ModuleNotFoundError as exc:
        if exc.name and f"{run}.".startswith(f"{exc.name}."):
            return [f"{where}.run: no module named {run!r}"], []
        return [f"{where}.run: {run} cannot be imported: {exc}"], []
    except Exception as exc:  # a module that fails to import is a problem to report, not ours
        return [f"{where}.run: {run} cannot be imported: {type(exc).__name__}: {exc}"], []
    if not callable(getattr(module, "main", None)):
        return [f"{where}.run: {run} has no main() to run"], []
    try:
        settings = read_settings(getattr(module, "Settings", None), raw)
    except SettingsError as exc:
        return [f"{where}.{exc}"], []
    except (TypeError, ValueError) as exc:
        return [f"{where}.settings: {exc}"], []
    address = getattr(settings, "listen_address", None)
    return [], [[where, *address()]] if callable(address) else []


def main() -> None:
    answer = sys.stdout
    sys.stdout = sys.stderr  # whatever a child module prints at import stays out of the answer
    problems: list[str] = []
    listens: list[list] = []
    for child in json.load(sys.stdin):
        found, addresses = check(child["where"], child["run"], child["settings"])
        problems += found
        listens += addresses
    json.dump({"problems": problems, "listens": listens}, answer)


if __name__ == "__main__":
    main()
