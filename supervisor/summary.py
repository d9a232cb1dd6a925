"""One log line that shows the system's shape: how many processes run, each feed's connection
and event rate, what each consumer takes in. The supervisor logs it a few seconds after it
starts, when the feeds should be flowing, and then every SUMMARY_EVERY seconds
(supervisor.loop), from its own status answer. A feed whose handler stopped or fell silent
(supervisor.health) is named with that state and no rate: none flows."""

from __future__ import annotations

from typing import Any

from tickmesh.supervisor.health import SILENT, STOPPED

FIRST_AFTER = (4.0, 10.0)  # seconds after the start: the feeds connecting, then flowing
SUMMARY_EVERY = 60.0


def summary(status: dict[str, Any]) -> dict[str, str]:
    """The line's fields, from a status answer (supervisor.control's `status`)."""
    children = status["children"]
    running = [name for name, child in children.items() if child["state"] == "running"]
    not_running = [f"{name} {child['state']}" for name, child in children.items()
                   if child["state"] != "running"]
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
