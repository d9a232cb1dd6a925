"""Checking children before anything starts, by module name: `python -m tickmesh.runtime.check` reads
a JSON list of children ({"where", "run", "settings"}) on stdin and answers on stdout,
one JSON line at a time: `"ready"` once it is about to import the first child's module, then,
for each child in turn, {"problems": [...], "listens": [[key, endpoint], ...],
"variables": [...]}. Whoever runs it (supervisor.preflight) gives each child a deadline from
the line before, and can tell which child a check that never answers, or dies, is stuck on.

For each child: the module must exist and have `main()`; its settings table is read by the
module's own `Settings` class (None or absent: no settings), the same class the child reads it
with (runtime.process). The settings say where the child will listen: a simulator's
`listen_address()` gives (host, port) (its `port` key); a service's `listen_endpoints()` gives
{settings key: ZeroMQ endpoint} ("" for none). Its fields ending in `_env`, defaults included,
name the environment variables (secrets) the child may read, the only ones the supervisor
passes it. It runs in a process of its own so that the supervisor never imports a child's
code; whatever a module prints, or a process it starts writes, goes to stderr, never into the
answer.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import sys
from typing import IO, Any, NamedTuple

from tickmesh.runtime.process import read_settings
from tickmesh.runtime.settings import SettingsError

READY = "ready"


class Found(NamedTuple):
    problems: list[str]
    listens: list[list[str]] = []
    variables: list[str] = []


def renamed(module: str) -> str:
    """What to say of a module that is not found, if it is one of tickmesh's by its old name
    (before everything moved under `tickmesh.`): "", or the name to write instead."""
    new = f"tickmesh.{module}"
    try:
        if importlib.util.find_spec(new) is not None:
            return f": tickmesh's own modules are all under tickmesh. now, write {new!r}"
    except (ImportError, ValueError):
        pass
    return ""


def check(where: str, run: str, raw: dict[str, Any]) -> Found:
    """What one child's module and settings say: problems, where it listens, its variables."""
    try:
        module = importlib.import_module(run)
    except ModuleNotFoundError as exc:
        if exc.name and f"{run}.".startswith(f"{exc.name}."):
            return Found([f"{where}.run: no module named {run!r}{renamed(run)}"])
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
    return Found([], listens(where, settings), variables(settings))


def listens(where: str, settings: Any) -> list[list[str]]:
    """[key, endpoint] of each address the settings say the child will listen on."""
    found: dict[str, str] = {}
    if callable(address := getattr(settings, "listen_address", None)):
        found["port"] = tcp_endpoint(*address())
    if callable(endpoints := getattr(settings, "listen_endpoints", None)):
        found.update(endpoints())
    return [[f"{where}.settings.{key}", endpoint] for key, endpoint in found.items() if endpoint]


def tcp_endpoint(host: str, port: int) -> str:
    """tcp://HOST:PORT, with an IPv6 address in brackets."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def variables(settings: Any) -> list[str]:
    """The environment variables the settings name in fields ending in `_env`."""
    if not dataclasses.is_dataclass(settings):
        return []
    values = (getattr(settings, f.name) for f in dataclasses.fields(settings)
              if f.name.endswith("_env"))
    return sorted({value for value in values if isinstance(value, str) and value})


def answer_stream() -> IO[str]:
    """This process's stdout, for the answer alone: descriptor 1 becomes stderr, so that what
    a child's module prints, and what a process it starts writes, stays out of it."""
    answer = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return answer


def say(answer: IO[str], value: Any) -> None:
    answer.write(json.dumps(value) + "\n")
    answer.flush()


def main() -> None:
    answer = answer_stream()
    children = json.load(sys.stdin)
    say(answer, READY)
    for child in children:
        say(answer, check(child["where"], child["run"], child["settings"])._asdict())


if __name__ == "__main__":
    main()
