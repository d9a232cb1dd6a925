"""What a config reload (`tickmesh reload`) reads and what it would change.

`read` loads the config file again and checks all of it as `tickmesh check` does (its shape,
then every child's module and settings, in a process of its own: it blocks, so the loop runs
it in a thread). The rest is pure: `fixed_changes` names what a reload cannot apply ([bus]
and [supervisor]: only a restart of the whole system can), and `diff` sorts the children by
name into added, removed, changed (any field of its entry differs, settings included) and
unchanged. `other_file` says why a reload that names a file is refused: only the running
system's own file (the same once resolved, or the same content) can be reloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

from tickmesh.supervisor import config, preflight
from tickmesh.supervisor.config import ChildConfig, Config

_NOT_SUPERVISOR = {"path", "bus", "forwarder", "children"}  # the other fields: [supervisor]


@dataclass(frozen=True)
class Changes:
    """Child names; added, changed and unchanged in the new config's order, removed in the
    old one's."""
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        return {key: list(names) for key, names in asdict(self).items()}


def read(path: Path) -> tuple[Config, preflight.Checked]:
    """The config at `path`, checked completely; ConfigError lists every problem."""
    loaded = config.load(path)
    return loaded, preflight.check_children(loaded)


def other_file(running: Path, named: Path) -> str:
    """Why the system that reads `running` cannot reload `named` ("" if `named` is that file:
    the same path once resolved, or the same content)."""
    try:
        if running.resolve() == named.resolve() or running.read_bytes() == named.read_bytes():
            return ""
    except OSError:
        pass
    return (f"the running system reads {running.resolve()}, not {named}: to run {named} "
            f"instead, stop it (`tickmesh stop`) and `tickmesh run {named}`")


def fixed_changes(old: Config, new: Config) -> list[str]:
    """The keys of [bus] and [supervisor] whose values differ (as `bus.hwm`)."""
    bus = [f"bus.{key}" for key, value in asdict(old.bus).items()
           if asdict(new.bus)[key] != value]
    supervisor = [f"supervisor.{field.name}" for field in fields(Config)
                  if field.name not in _NOT_SUPERVISOR
                  and getattr(old, field.name) != getattr(new, field.name)]
    return bus + supervisor


def diff(old: Iterable[ChildConfig], new: Iterable[ChildConfig]) -> Changes:
    """How the children `new` describes differ from the `old` ones, by name."""
    before = {child.name: child for child in old}
    after = {child.name: child for child in new}
    return Changes(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=tuple(name for name in after if name in before and after[name] != before[name]),
        unchanged=tuple(name for name in after if before.get(name) == after[name]),
    )
