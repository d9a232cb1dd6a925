"""Settings tables (a child's TICKMESH_CHILD settings, a simulator's command line) read into
frozen dataclasses, checked key by key.

The dataclass declares the keys: a field's type says what its value must be, and a field
without a default is required. The types:
    str, int, bool
    float           an int is taken too
    Strings         a list of non-empty strings (each stripped)
    CommaStrings    the same, or one string of them separated by commas: "AAPL, MSFT"
    dict[str, D]    a table of tables, each read into the dataclass D (its keys named
                    `settings.KEY.NAME.key` in errors): per-feed settings, for one
Unknown keys are errors. A check beyond the type goes in the dataclass's __post_init__, with
`require`. Every error is a SettingsError (a ValueError) that names the key:
    settings.port: expected an integer, got 'abc'
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import Annotated, Any, Mapping, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")

Strings = tuple[str, ...]
COMMA_SEPARATED = "or one string of them separated by commas"
CommaStrings = Annotated[Strings, COMMA_SEPARATED]

_SCALARS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_STRINGS = "a list of non-empty strings"


class SettingsError(ValueError):
    """A settings table that does not fit its dataclass; the message names the key."""


def require(ok: bool, key: str, expected: str, value: Any) -> None:
    """Raise the SettingsError for `key` unless `ok`."""
    if not ok:
        raise SettingsError(f"settings.{key}: expected {expected}, got {value!r}")


def read(cls: type[T], raw: Mapping[str, Any]) -> T:
    """An instance of the dataclass `cls` from the table `raw`, every key checked."""
    known = {f.name: f for f in fields(cls) if f.init}  # type: ignore[arg-type]
    for key in raw:
        if key not in known:
            raise SettingsError(f"settings.{key}: unknown key (known: {', '.join(sorted(known))})")
    for name, f in known.items():
        if name not in raw and f.default is MISSING and f.default_factory is MISSING:
            raise SettingsError(f"settings.{name}: required")
    kinds = get_type_hints(cls, include_extras=True)
    return cls(**{key: _value(key, value, kinds[key]) for key, value in raw.items()})


def _value(key: str, value: Any, kind: Any) -> Any:
    if get_origin(kind) is dict:
        return _tables(key, value, get_args(kind)[1])
    if kind in (Strings, CommaStrings):
        return _strings(key, value, comma=kind is CommaStrings)
    if kind is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool), key,
                _SCALARS[float], value)
        return float(value)
    require(type(value) is kind, key, _SCALARS[kind], value)
    return value


def _strings(key: str, value: Any, comma: bool) -> Strings:
    items = value.split(",") if comma and isinstance(value, str) else value
    ok = isinstance(items, (list, tuple)) and all(
        isinstance(item, str) and item.strip() for item in items)
    require(ok, key, f"{_STRINGS}, {COMMA_SEPARATED}" if comma else _STRINGS, value)
    return tuple(item.strip() for item in items)


def _tables(key: str, value: Any, cls: type) -> dict[str, Any]:
    """A table of tables, each read into the dataclass `cls`; errors name the inner key."""
    assert is_dataclass(cls), f"settings.{key}: a table of tables needs a dataclass"
    require(isinstance(value, Mapping), key, "a table of tables", value)
    out = {}
    for name, table in value.items():
        require(isinstance(table, Mapping), f"{key}.{name}", "a table", table)
        try:
            out[name] = read(cls, table)
        except SettingsError as exc:
            raise SettingsError(str(exc).replace("settings.", f"settings.{key}.{name}.", 1)) \
                from None
    return out
