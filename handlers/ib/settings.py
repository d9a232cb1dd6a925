"""Settings tables (from the config, or a command line) read into frozen dataclasses.

Every field has a default, and a value must be of its default's kind: a float field takes an
int too, and a tuple-of-strings field takes a list of non-empty strings or one comma-separated
string. Unknown keys are errors. A ValueError names the key that is wrong.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def read(cls: type[T], raw: Mapping[str, Any]) -> T:
    """An instance of the dataclass `cls` from `raw`, each value checked against its default."""
    defaults = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(raw) - set(defaults)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    values = {name: _value(name, value, defaults[name]) for name, value in raw.items()}
    return cls(**values)


def _value(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(
            isinstance(item, str) and item.strip() for item in items
        ):
            return tuple(item.strip() for item in items)
    elif isinstance(default, float) and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
    elif type(value) is type(default):
        return value
    raise ValueError(f"setting {name} must be like {default!r}, got {value!r}")
