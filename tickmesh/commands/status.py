"""ask the running supervisor how its processes are (exit 1 if none answers)

Three tables: every process of this host (the supervisor first, by its name) with its life and
its CPU and memory; every feed (a handler's connection) with its state, traffic, gaps and last
error; then the bus: each line, whether its forwarder runs on this host, whether it is
reachable from here (up: the supervisor's own heartbeat came back on it within 3 s,
supervisor.reach), when its own (heard_own) and any (heard_any) heartbeat last came on it, and
its endpoints. `--json`
prints the supervisor's whole answer (docs/operations.md describes each field).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

from tickmesh.supervisor.control import NoSupervisor, request_status
from tickmesh.system import EXIT_NO_SUPERVISOR, die, find

WIDTH = 120  # the tables fit in this many columns
PROCESS_COLUMNS = ("name", "state", "ready", "pid", "uptime", "restarts", "exit", "cpu%",
                   "rss_mb", "out/s", "in/s", "heartbeat")
FEED_COLUMNS = ("process", "provider", "connection", "events/s", "last_event", "gaps",
                "reconnects", "resyncing", "p50_ms", "p99_ms", "last_error")
LINE_COLUMNS = ("line", "state", "forwarder", "heard_own", "heard_any", "publish", "subscribe")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    system = find(args.config)
    try:
        status = request_status(system["control"], args.timeout)
    except NoSupervisor as exc:
        die(f"{exc} (tried the system of run dir {system['run_dir']}: is it running?)",
            EXIT_NO_SUPERVISOR)
    print(json.dumps(status, indent=2) if args.json else table(status))


def table(status: dict[str, Any], now: Callable[[], float] = time.time) -> str:
    """The processes' table, then the feeds' (if any handler has a connection), then the bus
    lines' (if the answer has them)."""
    supervisor = status["supervisor"].get("name", "supervisor")
    processes = {supervisor: {"state": "running", **status["supervisor"]},
                 **status["children"]}
    lines = [f"supervisor pid {status['pid']}, config {status['config']}", ""]
    lines += _aligned([PROCESS_COLUMNS, *(_process_row(name, process)
                                          for name, process in processes.items())])
    feeds = [(name, process["health"]) for name, process in processes.items()
             if (process.get("health") or {}).get("feed")]
    if feeds:
        lines += ["", *_fitted([FEED_COLUMNS, *(_feed_row(name, health, now())
                                                for name, health in feeds)])]
    if (status.get("bus") or {}).get("lines"):
        lines += ["", *_fitted([LINE_COLUMNS, *map(_line_row, status["bus"]["lines"])])]
    return "\n".join(lines)


def _line_row(line: dict[str, Any]) -> tuple[str, ...]:
    """A bus line: "A  up  here  0.4s ago  0.4s ago  PUBLISH  SUBSCRIBE" (heartbeats: when
    the supervisor's own, and any, last came on it; "never")."""
    return (line["line"], line["state"], "here" if line["forwarder_here"] else "elsewhere",
            _ago(line["own_heartbeat_age"]), _ago(line["heartbeat_age"]), line["publish"],
            line["subscribe"])


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_duration(seconds)} ago"


def _process_row(name: str, process: dict[str, Any]) -> tuple[str, ...]:
    health = process.get("health") or {}
    rss = process.get("rss_bytes")
    return (name, process["state"], _cell(process.get("ready")), _cell(process["pid"]),
            _duration(process["uptime"]), _cell(process.get("restarts")),
            _cell(process.get("exit_code")), _cell(process.get("cpu_percent")),
            "-" if rss is None else f"{rss / 1e6:.1f}",
            _rate(health.get("events_per_second")), _rate(health.get("events_received_per_second")),
            _duration(health.get("heartbeat_age")))


def _feed_row(name: str, health: dict[str, Any], now: float) -> tuple[str, ...]:
    feed = health["feed"]
    error = feed["last_error"]
    last_error = "-" if error is None else (
        f"{error['code']} ({_duration(now - error['at'])} ago) {error['message']}")
    return (name, feed["provider"], feed["state"], _rate(health["events_per_second"]),
            _duration(health["last_event_age"]), str(health["gaps"]), str(health["reconnects"]),
            str(len(feed["resyncing"])), _milliseconds(health["latency_p50"]),
            _milliseconds(health["latency_p99"]), last_error)


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


def _fitted(rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned, with the last column (a message) cut so that every line fits in WIDTH."""
    heads = _aligned([row[:-1] for row in rows])
    width = max(len(head) for head in heads)
    room = max(WIDTH - width - 2, 12)
    return [f"{head.ljust(width)}  {_cut(row[-1], room)}" for head, row in zip(heads, rows)]


def _cut(text: str, room: int) -> str:
    text = " ".join(text.split())  # one line, whatever the provider sent
    return text if len(text) <= room else text[:room - 1] + "…"


def _duration(seconds: float | None) -> str:
    """Seconds as people read them: 0.4s, 12s, 3m04s, 2h05m, 3d04h."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    for unit, size, smaller, small in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                       ("m", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size}{unit}{whole % size // small:02d}{smaller}"
    return f"{whole}s"


def _rate(per_second: float | None) -> str:
    return "-" if per_second is None else f"{per_second:.1f}"


def _milliseconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.2f}" if seconds < 0.01 else f"{seconds * 1000:.0f}"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)
