"""Checking children before anything starts, by module name: `python -m runtime.check` reads
a JSON list of children ({"name", "where", "run", "settings"}) on stdin and prints a JSON
answer: {"problems": [...], "listens": [[where, host, port], ...], "variables": {name: [...]}}.

For each child: the module must exist and have `main()`; its settings table is read by the
module's own `Settings` class (None or absent: no settings), the same class the child reads it
with (runtime.process); a settings object with a `listen_address()` method (a simulator's)
says where it will listen; its fields ending in `_env`, defaults included, name the
environment variables (secrets) the child may read, the only ones the supervisor passes it. It runs in a process of its own so that the supervisor never
imports a child's code.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from typing import Any, NamedTuple

from runtime.process import read_settings
from runtime.settings import SettingsError


class Found(NamedTuple):
    problems: list[str]
    listens: list[list] = []
    variables: list[str] = []


def check(where: str, run: str, raw: dict[str, Any]) -> Found:
    """What one child's module and settings say: problems, where it listens, its variables."""
    try:
        module = importlib.import_module(run)
    except ModuleNotFoundError as exc:
        if exc.name and f"{run}.".startswith(f"{exc.name}."):
            return Found([f"{where}.run: no module named {run!r}"])
        return Found([f"{where}.run: {run} cannot be imported: {exc}"])
    except Exception as exc:  # a module that fails to import is a problem to report, not ours
        return Found([f"{where}.run: {run} cannot be imported: {type(exc).__name__}: {exc}"])
    if not callable(getattr(module, "main", None)):
        return Found([f"{where}.run: {run} has no main() to run"])
    try:
        settings = read_settings(getattr(module, "Settings", None), raw)
    except SettingsError as exc:
        return Found([f"{where}.{exc}"])
    except (TypeError, ValueError) as exc:
        return Found([f"{where}.settings: {exc}"])
    address = getattr(settings, "listen_address", None)
    return Found([], [[where, *address()]] if callable(address) else [], variables(settings))


def variables(settings: Any) -> list[str]:
    """The environment variables the settings name in fields ending in `_env`."""
    if not dataclasses.is_dataclass(settings):
        return []
    values = (getattr(settings, f.name) for f in dataclasses.fields(settings)
              if f.name.endswith("_env"))
    return sorted({value for value in values if isinstance(value, str) and value})


def main() -> None:
    answer = sys.stdout
    sys.stdout = sys.stderr  # whatever a child module prints at import stays out of the answer
    problems: list[str] = []
    listens: list[list] = []
    names: dict[str, list[str]] = {}
    for child in json.load(sys.stdin):
        found = check(child["where"], child["run"], child["settings"])
        problems += found.problems
        listens += found.listens
        names[child["name"]] = found.variables
    json.dump({"problems": problems, "listens": listens, "variables": names}, answer)


if __name__ == "__main__":
    main()
