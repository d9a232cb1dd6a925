"""Loading and validating the TOML config (format: docs/architecture.md, "Config").

Everything is checked before anything starts; every problem found is reported at once, each
naming the file, the key (`children[2].restart`, counting from 0) and what is wrong.
`{run_dir}` and `{uid}` in strings are replaced; TICKMESH_RUN_DIR overrides the run_dir.

The bus has line A (`publish`, `subscribe`) and may have line B (`publish_b`, `subscribe_b`,
both or neither): a second forwarder, on another host, carrying every message too. Every
endpoint differs from the others and from supervisor.control. `forwarder` says which line's
forwarder this host's supervisor runs: "A" (the default), "B" (line B required) or "none" (a
host of handlers and consumers whose bus is elsewhere). The forwarder is implicit: it is named
"forwarder" on line A and "forwarder-b" on line B, and `Config.processes` is it (if this host
runs one), then the configured children; a config may have no children (a forwarder-only
host), but not neither. Process names are topic sources, unique across the hosts of one bus:
the forwarders' names, and the supervisor's own (`[supervisor] name`, default "supervisor"),
are taken. A child's `after` names the children it waits for (each must say "ready" first, or
its `ready_timeout` pass); every child waits for the forwarder, if this host runs one; a cycle
of `after` is an error.
Every number has a range (`_RANGES`), so an infinite or NaN one (`1e999`, `nan`) never passes;
a number in a child's settings must be finite.

`[bus] curve = true` secures the bus with ZeroMQ CURVE (bus.sockets): `server_key_file`,
`client_key_file` and `authorized_keys` name key files and a directory (relative paths are
read from the config file's directory), each checked here; `authorized_keys` only where a
CURVE server runs (a forwarder, or a tcp:// control socket). A tcp:// control socket needs
CURVE.
`warnings` lists what is allowed but unsafe: a tcp bus reachable from other machines without
CURVE.

[supervisor] also says where each child's output is written (`log_dir`, default
{run_dir}/logs, "" for none; rotated past `log_max_bytes`, keeping `log_backups` files) and
where the Prometheus endpoint listens (`metrics = "HOST:PORT"`; off when unset), and how long
each child's module may take to be imported when the children are checked (`import_timeout`,
supervisor.preflight).

This module checks the config's own shape. Each child's settings table is checked by the
child's own settings class (supervisor.preflight), and so are the ports it will listen on.
"""

from __future__ import annotations

import datetime
import ipaddress
import keyword
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tickmesh.bus.endpoints import DEFAULT_RUN_DIR, RUN_DIR_ENV
from tickmesh.bus.sockets import (DEFAULT_HWM, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_RECEIVE_HWM,
                                  DEFAULT_SUBSCRIBER_HWM,
                                  LINE_NAMES, NO_FORWARDER, BusConfig, key_file_problem)

DEFAULT_CONFIG = Path("config/default.toml")  # `tickmesh run` and `check` without a CONFIG
SHIPPED_CONFIGS = "tickmesh.config"  # the package whose data are the configs tickmesh ships
DEFAULT_PUBLISH = "ipc://{run_dir}/publish"
DEFAULT_SUBSCRIBE = "ipc://{run_dir}/subscribe"
DEFAULT_CONTROL = "ipc://{run_dir}/control"
DEFAULT_LOG_DIR = "{run_dir}/logs"
DEFAULT_LOG_MAX_BYTES = 10_000_000
DEFAULT_LOG_BACKUPS = 3
DEFAULT_IMPORT_TIMEOUT = 5.0
FORWARDER_NAME = "forwarder"  # line A's
FORWARDER_NAMES = {"A": FORWARDER_NAME, "B": "forwarder-b"}  # each line's forwarder's name
FORWARDER_MODULE = "tickmesh.runtime.forwarder"
SUPERVISOR_NAME = "supervisor"  # the default name: its heartbeats, metrics and log file go by it
FORWARDER_CHOICES = (*LINE_NAMES, NO_FORWARDER)
RESTART_POLICIES = ("permanent", "transient", "temporary")
IPC_PATH_MAX = 107  # sun_path is 108 bytes, with the terminating NUL
ZMQ_INT_MAX = 2**31 - 1  # libzmq's int socket options (the high-water marks)
INT64_MAX = 2**63 - 1
DAY = 86_400

_CHILD_NAME = re.compile(r"[a-z0-9_-]+")  # a process's name is a topic source (bus.topics)
_NUMBER = (int, float)
_NAMES = (list,)  # an array of child names (a tuple, to have a type name of its own)
_SCHEMAS: dict[str, dict[str, Any]] = {
    "": {"bus": dict, "supervisor": dict, "children": list},
    "bus": {"publish": str, "subscribe": str, "publish_b": str, "subscribe_b": str,
            "forwarder": str, "hwm": int, "subscriber_hwm": int, "receive_hwm": int,
            "max_message_bytes": int,
            "curve": bool, "server_key_file": str, "client_key_file": str,
            "authorized_keys": str},
    "supervisor": {"name": str, "control": str, "run_dir": str, "metrics": str,
                   "log_dir": str, "log_max_bytes": int, "log_backups": int,
                   "import_timeout": _NUMBER},
    "child": {
        "name": str, "run": str, "restart": str, "max_restarts": int,
        "within_seconds": _NUMBER, "shutdown_timeout": _NUMBER, "after": _NAMES,
        "ready_timeout": _NUMBER, "settings": dict,
    },
}
_CURVE_KEYS = ("server_key_file", "client_key_file", "authorized_keys")


@dataclass(frozen=True)
class _Range:
    """The values a number may take: `low` (or more than `low`, if not `low_included`) to
    `high`. NaN is in no range."""
    low: int
    high: int
    low_included: bool = True

    def allows(self, value: float) -> bool:
        low, high = self.low, self.high
        return (low <= value <= high) if self.low_included else (low < value <= high)

    def __str__(self) -> str:
        if self.low_included:
            return f"from {self.low} to {self.high}"
        return f"more than {self.low} and at most {self.high}"


_SECONDS = _Range(0, DAY, low_included=False)
_RANGES: dict[str, dict[str, _Range]] = {
    "bus": {"hwm": _Range(1, ZMQ_INT_MAX), "subscriber_hwm": _Range(1, ZMQ_INT_MAX),
            "receive_hwm": _Range(1, ZMQ_INT_MAX),
            "max_message_bytes": _Range(1, INT64_MAX)},
    "supervisor": {"log_max_bytes": _Range(1, INT64_MAX),
                   "log_backups": _Range(1, 1000),  # each rotation renames every one of them
                   "import_timeout": _Range(0, 600, low_included=False)},
    "child": {"max_restarts": _Range(0, 1_000_000), "within_seconds": _SECONDS,
              "shutdown_timeout": _SECONDS, "ready_timeout": _SECONDS},
}
_TYPE_NAMES = {bool: "true or false", str: "a string", int: "an integer", _NUMBER: "a number", dict: "a table",
               list: "an array of tables", _NAMES: "an array of child names"}


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason, each naming its key."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {problem}" for problem in problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class ChildConfig:
    name: str
    run: str
    restart: str = "permanent"
    max_restarts: int = 5
    within_seconds: float = 60.0
    shutdown_timeout: float = 3.0
    after: tuple[str, ...] = ()
    ready_timeout: float = 10.0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    path: Path
    run_dir: Path
    control: str
    bus: BusConfig
    forwarder: ChildConfig | None  # None: this host runs no forwarder ([bus] forwarder = "none")
    children: tuple[ChildConfig, ...]
    name: str = SUPERVISOR_NAME  # the supervisor's process name ([supervisor] name)
    metrics: tuple[str, int] | None = None  # (host, port) of the Prometheus endpoint; None: off
    log_dir: Path | None = None  # each child's output goes to NAME.log here, rotated
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES  # a log file is rotated past this size
    log_backups: int = DEFAULT_LOG_BACKUPS  # rotated files kept: NAME.log.1 ... NAME.log.N
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT  # seconds to import one child's module

    @property
    def processes(self) -> tuple[ChildConfig, ...]:
        """Everything the supervisor runs, in start order."""
        return (self.forwarder, *self.children) if self.forwarder else self.children


def default_path() -> Path:
    """The config to use when none is named: config/default.toml in the current directory if
    there is one (a checkout, or a project's own copy from `tickmesh init config`), else the
    installed one."""
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    return Path(str(resources.files(SHIPPED_CONFIGS) / DEFAULT_CONFIG.name))


def load(path: str | Path) -> Config:
    """Read and validate one config file; raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    config = _build(path, raw, problems)
    if problems:
        raise ConfigError(path, problems)
    return config


# --- building ------------------------------------------------------------------------------

def _build(path: Path, raw: dict, problems: list[str]) -> Config:
    top = _checked(raw, "", "", problems)
    bus = _checked(top.get("bus", {}), "bus", "bus.", problems)
    sup = _checked(top.get("supervisor", {}), "supervisor", "supervisor.", problems)
    run_dir = _run_dir(sup, problems)
    places = {"{run_dir}": str(run_dir), "{uid}": str(os.getuid())}
    endpoints = _endpoints(bus, sup, places, problems)
    line_b = _line_b(bus, places, problems)
    problems.extend(_same_endpoints(endpoints, line_b))
    forwarder = _forwarder_line(bus.get("forwarder", "A"), bool(line_b), problems)
    name = _supervisor_name(sup.get("name", SUPERVISOR_NAME), bool(line_b), problems)
    curve = bus.get("curve", False)
    keys = {key: str(path.parent / _expand(bus[key], places)) for key in _CURVE_KEYS if key in bus}
    admits = forwarder != NO_FORWARDER or endpoints["control"].startswith("tcp://")
    problems.extend(_curve_problems(curve, keys, admits))
    children = _children(top.get("children", []), places, _taken(name, bool(line_b)), problems)
    if forwarder == NO_FORWARDER and not top.get("children"):
        problems.append("bus.forwarder: \"none\" and no [[children]]: this supervisor would "
                        "run nothing")
    if endpoints["control"].startswith("tcp://") and not curve:
        problems.append("supervisor.control: a tcp:// control socket needs [bus] curve = true "
                        "(else anyone who reaches the port commands the supervisor); "
                        "or use ipc:// (the default)")
    return Config(
        path=path,
        run_dir=run_dir,
        control=endpoints["control"],
        bus=BusConfig(endpoints["publish"], endpoints["subscribe"],
                      hwm=bus.get("hwm", DEFAULT_HWM),
                      subscriber_hwm=bus.get("subscriber_hwm", DEFAULT_SUBSCRIBER_HWM),
                      receive_hwm=bus.get("receive_hwm", DEFAULT_RECEIVE_HWM),
                      max_message_bytes=bus.get("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES),
                      curve=curve, **keys, **line_b, forwarder=forwarder),
        forwarder=(None if forwarder == NO_FORWARDER
                   else ChildConfig(FORWARDER_NAMES[forwarder], FORWARDER_MODULE)),
        children=children,
        name=name,
        metrics=_metrics_address(sup.get("metrics"), problems),
        log_dir=_log_dir(_expand(sup.get("log_dir", DEFAULT_LOG_DIR), places), path),
        log_max_bytes=sup.get("log_max_bytes", DEFAULT_LOG_MAX_BYTES),
        log_backups=sup.get("log_backups", DEFAULT_LOG_BACKUPS),
        import_timeout=sup.get("import_timeout", DEFAULT_IMPORT_TIMEOUT),
    )


def _endpoints(bus: dict, sup: dict, places: dict[str, str],
               problems: list[str]) -> dict[str, str]:
    """Line A's two endpoints and the control socket's, by key (publish, subscribe, control)."""
    return {
        key: _endpoint(_expand(table.get(key, default), places), f"{section}.{key}", problems)
        for section, table, key, default in (
            ("bus", bus, "publish", DEFAULT_PUBLISH),
            ("bus", bus, "subscribe", DEFAULT_SUBSCRIBE),
            ("supervisor", sup, "control", DEFAULT_CONTROL),
        )
    }


def _line_b(bus: dict, places: dict[str, str], problems: list[str]) -> dict[str, str]:
    """{"publish_b": ..., "subscribe_b": ...} if the config has line B (both keys), else {}."""
    given = [key for key in ("publish_b", "subscribe_b") if key in bus]
    if len(given) == 1:
        missing = "subscribe_b" if given == ["publish_b"] else "publish_b"
        problems.append(f"bus.{missing}: missing (line B needs both bus.publish_b and "
                        "bus.subscribe_b)")
        return {}
    return {key: _endpoint(_expand(bus[key], places), f"bus.{key}", problems) for key in given}


def _same_endpoints(endpoints: dict[str, str], line_b: dict[str, str]) -> list[str]:
    """Every bus endpoint and the control socket must differ."""
    if len(set(endpoints.values())) < len(endpoints):
        return ["bus.publish, bus.subscribe and supervisor.control must all differ"]
    keys = {**{f"bus.{key}": value for key, value in endpoints.items() if key != "control"},
            "supervisor.control": endpoints["control"],
            **{f"bus.{key}": value for key, value in line_b.items()}}
    problems, seen = [], {}
    for key, endpoint in keys.items():
        if endpoint in seen:
            problems.append(f"{key}: {endpoint!r} is also {seen[endpoint]}: every bus endpoint, "
                            "on either line, and supervisor.control must differ")
        seen.setdefault(endpoint, key)
    return problems


def _forwarder_line(value: str, has_line_b: bool, problems: list[str]) -> str:
    """bus.forwarder: "A", "B" (only with line B) or "none"; "A" if it is wrong."""
    if value not in FORWARDER_CHOICES:
        problems.append(f"bus.forwarder: {value!r} must be \"A\", \"B\" or \"none\" (the "
                        "line whose forwarder this host runs, or none)")
        return "A"
    if value == "B" and not has_line_b:
        problems.append("bus.forwarder: \"B\" needs line B (bus.publish_b and bus.subscribe_b)")
        return "A"
    return value


def _supervisor_name(name: str, has_line_b: bool, problems: list[str]) -> str:
    if not _CHILD_NAME.fullmatch(name):
        problems.append(f"supervisor.name: {name!r} must match [a-z0-9_-]+ (it names bus topics)")
    elif name in _forwarders(has_line_b):
        problems.append(f"supervisor.name: {name!r} is the name of "
                        f"{_forwarders(has_line_b)[name]}")
    return name


def _forwarders(has_line_b: bool) -> dict[str, str]:
    """The forwarders' names (whichever host runs them: names are unique on a bus)."""
    lines = LINE_NAMES if has_line_b else LINE_NAMES[:1]
    return {FORWARDER_NAMES[line]: f"line {line}'s forwarder" for line in lines}


def _taken(supervisor: str, has_line_b: bool) -> dict[str, str]:
    """The names no child may have, and whose they are."""
    return {**_forwarders(has_line_b), supervisor: "the supervisor itself"}


def _metrics_address(text: str | None, problems: list[str]) -> tuple[str, int] | None:
    """supervisor.metrics, "HOST:PORT", as (host, port); None if unset."""
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"supervisor.metrics: {text!r} must be HOST:PORT, like "
                        "\"127.0.0.1:9108\"")
        return None
    return host.strip("[]"), int(port)


def _log_dir(text: str, path: Path) -> Path | None:
    """supervisor.log_dir: "" turns the log files off; a relative path is the config's."""
    if text == "":
        return None
    return path.parent.resolve() / text


def _curve_problems(curve: bool, keys: dict[str, str], admits: bool) -> list[str]:
    """The CURVE keys' problems; `admits`: this host runs a CURVE server (a forwarder, or a
    tcp:// control socket), which needs the authorized_keys it admits (a host that only
    connects does not)."""
    if not curve:
        return [f"bus.{key}: only used with curve = true" for key in keys]
    required = _CURVE_KEYS if admits else _CURVE_KEYS[:2]
    problems = [f"bus.{key}: missing (required with curve = true)"
                for key in required if key not in keys]
    if "server_key_file" in keys:
        problems += [f"bus.server_key_file: {p}" for p in [key_file_problem(keys["server_key_file"])] if p]
    if "client_key_file" in keys:
        problems += [f"bus.client_key_file: {p}" for p in
                     [key_file_problem(keys["client_key_file"], secret=True)] if p]
    if "authorized_keys" in keys and not Path(keys["authorized_keys"]).is_dir():
        problems.append(f"bus.authorized_keys: {keys['authorized_keys']} is not a directory "
                        "(of the public .key files the forwarder admits)")
    return problems


def warnings(config: Config) -> list[str]:
    """What the config allows but should not: a tcp bus endpoint (of either line) reachable
    from other machines without CURVE."""
    found = []
    for line in config.bus.lines:
        suffix = "" if line.name == "A" else "_b"
        found += _open_endpoints(config, ((f"publish{suffix}", line.publish),
                                          (f"subscribe{suffix}", line.subscribe)))
    return found


def _open_endpoints(config: Config, endpoints: tuple[tuple[str, str], ...]) -> list[str]:
    found = []
    for key, endpoint in endpoints:
        scheme, _, address = endpoint.partition("://")
        host = address.rpartition(":")[0].strip("[]")
        if scheme == "tcp" and not config.bus.curve and not _loopback(host):
            found.append(f"bus.{key}: {endpoint} is reachable from other machines and curve is "
                         "off: anyone who reaches it can read or inject events (set [bus] "
                         "curve = true, see README \"Across machines\")")
    return found


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # *, an interface name, a host name: other machines may reach it


def _run_dir(sup: dict, problems: list[str]) -> Path:
    key, text = "supervisor.run_dir", sup.get("run_dir", DEFAULT_RUN_DIR)
    if os.environ.get(RUN_DIR_ENV):
        key, text = RUN_DIR_ENV, os.environ[RUN_DIR_ENV]
    run_dir = Path(text.replace("{uid}", str(os.getuid())))
    if not run_dir.is_absolute():
        problems.append(f"{key}: must be an absolute path, not {text!r}")
    return run_dir


def _children(tables: list, places: dict[str, str], taken: dict[str, str],
              problems: list[str]) -> tuple[ChildConfig, ...]:
    """The [[children]]; `taken`: the names they may not have (and whose they are)."""
    children: list[ChildConfig] = []
    indexes: list[int] = []  # each child's index among the tables (some may be dropped)
    taken = dict(taken)
    for index, table in enumerate(tables):
        where = f"children[{index}]"
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table ([[children]]), not {table!r}")
            continue
        child = _child(_checked(table, "child", f"{where}.", problems), where, places, problems)
        if child is None:
            continue
        if child.name in taken:
            owner = taken[child.name]
            problems.append(f"{where}.name: {child.name!r} is already the name of {owner}")
        taken[child.name] = where
        indexes.append(index)
        children.append(child)
    names = {child.name for child in children}
    for index, child in zip(indexes, children):
        for name in child.after:
            if name not in names or name == child.name:
                problems.append(f"children[{index}] ({child.name}).after: {name!r} is not "
                                "another child")
    problems.extend(_cycle_problems(children, indexes))
    return tuple(children)


def _cycle_problems(children: list[ChildConfig], indexes: list[int]) -> list[str]:
    """One problem per cycle of `after`, at the first child of the cycle to appear (`indexes`:
    each child's index among the [[children]] tables)."""
    index = {child.name: position for position, child in zip(indexes, children)}
    waits = {child.name: [name for name in child.after if name in index and name != child.name]
             for child in children}
    problems = []
    for cycle in _cycles(waits):
        first = min(cycle, key=index.__getitem__)
        at = cycle.index(first)
        names = " -> ".join([*cycle[at:], *cycle[:at], first])
        problems.append(f"children[{index[first]}].after: a cycle: {names} (each waits for the "
                        "next to be ready, so each starts only once its ready_timeout is over)")
    return problems


def _cycles(waits: dict[str, list[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of the graph `waits` finds (one per edge back into the
    path walked: each cycle once), each as the names along it."""
    state: dict[str, str] = {}  # "open": on the path walked; "done": walked from already
    path: list[str] = []
    found: list[list[str]] = []

    def walk(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for after in waits[name]:
            if state.get(after) == "open":
                found.append(path[path.index(after):])
            elif after not in state:
                walk(after)
        path.pop()
        state[name] = "done"

    for name in waits:
        if name not in state:
            walk(name)
    return found


def _child(table: dict, where: str, places: dict[str, str],
           problems: list[str]) -> ChildConfig | None:
    missing = [key for key in ("name", "run") if key not in table]
    problems.extend(f"{where}.{key}: missing (required)" for key in missing)
    if missing:
        return None
    after = table.get("after", [])
    if not all(isinstance(name, str) for name in after):
        problems.append(f"{where}.after: must be an array of child names, not {after!r}")
        after = []
    child = ChildConfig(**{**table, "after": tuple(after),
                           "settings": _expand(table.get("settings", {}), places)})
    problems.extend(f"{where}.{problem}" for problem in _child_problems(child))
    return child


def _child_problems(child: ChildConfig) -> list[str]:
    problems = []
    if not _CHILD_NAME.fullmatch(child.name):
        problems.append(f"name: {child.name!r} must match [a-z0-9_-]+ (it names bus topics)")
    if not all(_is_name(part) for part in child.run.split(".")):
        problems.append(f"run: {child.run!r} is not a module name (like handlers.alpaca.handler)")
    if child.restart not in RESTART_POLICIES:
        problems.append(f"restart: {child.restart!r} is not one of {', '.join(RESTART_POLICIES)}")
    problems.extend(f"settings{path}: {what}" for path, what in _unsupported(child.settings, ""))
    return problems


# --- checking pieces -----------------------------------------------------------------------

def _is_name(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text)


def _checked(table: dict, schema: str, prefix: str, problems: list[str]) -> dict:
    """The keys of `table` known to `schema`, of the right type and (numbers) in range;
    reports the others."""
    good = {}
    for key, value in table.items():
        expected = _SCHEMAS[schema].get(key)
        allowed = _RANGES.get(schema, {}).get(key)
        if expected is None:
            known = ", ".join(_SCHEMAS[schema])
            problems.append(f"{prefix}{key}: unknown key (known keys: {known})")
        elif isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            problems.append(f"{prefix}{key}: must be {_TYPE_NAMES[expected]}, not {value!r}")
        elif allowed is not None and not allowed.allows(value):
            problems.append(f"{prefix}{key}: must be {allowed}, not {value!r}")
        else:
            good[key] = value
    return good


def _endpoint(text: str, key: str, problems: list[str]) -> str:
    scheme, _, address = text.partition("://")
    if scheme == "ipc" and not address:
        problems.append(f"{key}: {text!r} has no path")
    elif scheme == "ipc" and len(address.encode()) > IPC_PATH_MAX:
        problems.append(f"{key}: {text!r} is longer than {IPC_PATH_MAX} bytes (shorten run_dir)")
    elif scheme == "tcp" and not re.fullmatch(r"[^:]+:\d{1,5}", address):
        problems.append(f"{key}: {text!r} must be tcp://HOST:PORT")
    elif scheme not in ("ipc", "tcp"):
        problems.append(f"{key}: {text!r} must start with ipc:// or tcp://")
    return text


def _expand(value: Any, places: dict[str, str]) -> Any:
    """`value` with the placeholders replaced in every string it holds."""
    if isinstance(value, str):
        for placeholder, replacement in places.items():
            value = value.replace(placeholder, replacement)
        return value
    if isinstance(value, list):
        return [_expand(item, places) for item in value]
    if isinstance(value, dict):
        return {key: _expand(item, places) for key, item in value.items()}
    return value


def _unsupported(value: Any, path: str) -> list[tuple[str, str]]:
    """(key path, reason) for values a child spec cannot carry (it is JSON)."""
    if isinstance(value, (datetime.date, datetime.time)):
        return [(path, "dates and times are not supported; use a string")]
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, f"must be a finite number, not {value!r}")]
    if isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
        return [found for where, item in items for found in _unsupported(item, where)]
    if isinstance(value, dict):
        items = [(f"{path}.{key}", item) for key, item in value.items()]
        return [found for where, item in items for found in _unsupported(item, where)]
    return []
