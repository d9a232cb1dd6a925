"""print the running system's endpoints: its bus, its control socket, its services (exit 1 if none)

The bus's publish and subscribe endpoints, line B's too if it has one (a Subscriber given no
endpoint connects to these subscribe endpoints), which line's forwarder runs on this host ("A",
"B" or "none"), the supervisor's control socket, and the book builder's snapshot service
and the recorder's gap-fill service where its config has them: of the system running in the
run dir (TICKMESH_RUN_DIR, or /tmp/tickmesh-UID), or of the one CONFIG describes. `--json`
prints them as one JSON object.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tickmesh.system import find, load

SERVICES = (("books", "tickmesh.consumers.books", "snapshot_endpoint"),
            ("gapfill", "tickmesh.consumers.recorder", "gapfill_endpoint"))
"""Each service: its name here, the module of the child that serves it, its settings key."""


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="the system's config (default: the one "
                        "running in the run dir)")
    parser.add_argument("--json", action="store_true", help="print them as JSON")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    found = endpoints(args.config)
    print(json.dumps(found, indent=2) if args.json else table(found))


def endpoints(path: str | None) -> dict[str, Any]:
    """The endpoints of the system `path` describes, or else of the one running."""
    system = find(path)
    bus = system["bus"]
    line_b = {key: bus[key] for key in ("publish_b", "subscribe_b") if bus.get(key)}
    return {"run_dir": system["run_dir"], "config": system["config"],
            "bus": {"publish": bus["publish"], "subscribe": bus["subscribe"], **line_b,
                    "forwarder": bus.get("forwarder", "A"), "curve": bus.get("curve", False)},
            "control": system["control"], "services": services(system["config"])}


def services(path: str) -> list[dict[str, str]]:
    """The SERVICES that the children of the config at `path` serve, in its order."""
    return [{"service": service, "child": child.name, "endpoint": child.settings[key]}
            for child in load(path).children for service, module, key in SERVICES
            if child.run == module and isinstance(child.settings.get(key), str)
            and child.settings[key]]


def table(found: dict[str, Any]) -> str:
    bus = found["bus"]
    rows = [("run dir", found["run_dir"], f"(config {found['config']})"),
            *((key, bus[key], _line_note(key, bus)) for key in
              ("publish", "subscribe", "publish_b", "subscribe_b") if key in bus),
            ("control", found["control"], "")]
    rows += [(s["service"], s["endpoint"], f"(child {s['child']})") for s in found["services"]]
    width = max(len(row[1]) for row in rows)
    return "\n".join(f"{name:<10} {endpoint:<{width}}  {note}".rstrip()
                     for name, endpoint, note in rows)


def _line_note(key: str, bus: dict[str, Any]) -> str:
    """Which line `key` is, and whether this host runs its forwarder: "(line A, forwarder
    here)", "(line B)"; nothing on the one line of a single machine (its forwarder is here)."""
    if "publish_b" not in bus and bus["forwarder"] == "A":
        return ""
    line = "B" if key.endswith("_b") else "A"
    return f"(line {line}, forwarder here)" if line == bus["forwarder"] else f"(line {line})"
