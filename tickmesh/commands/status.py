"""ask the running supervisor how its processes are (exit 1 if none answers)"""

from __future__ import annotations

import argparse
import json
from typing import Any

from supervisor.control import NoSupervisor, request_status
from tickmesh.system import EXIT_NO_SUPERVISOR, die, find

COLUMNS = ("name", "state", "ready", "pid", "restarts", "uptime", "exit_code")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds to wait (2)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    try:
        status = request_status(find(args.config)["control"], args.timeout)
    except NoSupervisor as exc:
        die(str(exc), EXIT_NO_SUPERVISOR)
    print(json.dumps(status, indent=2) if args.json else table(status))


def table(status: dict[str, Any]) -> str:
    rows = [COLUMNS]
    for name, child in status["children"].items():
        values = [name] + [child[key] for key in COLUMNS[1:]]
        rows.append(tuple(_cell(value) for value in values))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    return f"supervisor pid {status['pid']}, config {status['config']}\n" + "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)
