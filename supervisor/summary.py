"""One log line that shows the system's shape: how many processes run, each feed's connection
and event rate, what each consumer takes in. The supervisor logs it first once every process
has said "ready" and is running (at the latest FLOWING_AFTER seconds after its start), again
at FLOWING_AFTER when the feeds should be flowing, then every SUMMARY_EVERY seconds
(supervisor.loop), from its own status answer. A child not started yet (waiting for what it
comes `after`) is named "starting", not "stopped". A feed whose handler stopped or fell silent
(supervisor.health) is named with that state and no rate: none flows."""

from __future__ import annotations

from typing import Any, Iterable

from tickmesh.supervisor.health import SILENT, STOPPED

FLOWING_AFTER = 10.0  # seconds after the start: the feeds flowing (and the first line's latest)
SUMMARY_EVERY = 60.0


def summary(status: dict[str, Any], not_started: Iterable[str] = ()) -> dict[str, str]:
    """The line's fields, from a status answer (supervisor.control's `status`); `not_started`:
    the children not started yet (stopped in the answer, "starting" in the line)."""
    children = status["children"]
    pending = set(not_started)
    running = [name for name, child in children.items() if child["state"] == "running"]
    not_running = [f"{name} {'starting' if name in pending else child['state']}"
                   for name, child in children.items() if child["state"] != "running"]
    feeds, consumers = [], []
    for name, child in children.items():
        health = child.get("health") or {}
        if health.get("feed"):
            feeds.append(_feed(name, health))
        elif health.get("events_received_per_second"):
            consumers.append(f"{name} {health['events_received_per_second']:.0f}/s")
    fields = {"running": f"{len(running)} of {len(children)} processes"}
    if not_running:
        fields["not_running"] = ", ".join(not_running)
    if feeds:
        fields["feeds"] = ", ".join(feeds)
    if consumers:
        fields["consumers_in"] = ", ".join(consumers)
    return fields


def _feed(name: str, health: dict[str, Any]) -> str:
    """"alpaca subscribed 20/s"; "alpaca stopped" (no rate) once its handler is quiet."""
    state = health["feed"]["state"]
    if state in (STOPPED, SILENT):
        return f"{name} {state}"
    return f"{name} {state} {health.get('events_per_second', 0):.0f}/s"
