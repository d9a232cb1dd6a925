"""Whether each bus line is reachable from this host, judged the honest way: by what comes
back. The supervisor reads the heartbeats of each line through a subscriber of that line alone
(supervisor.watch) and tells this pure tracker (no I/O; times are unix seconds from any clock,
tests pass their own) when it heard, on that line, any heartbeat, and its own. Its own
heartbeat went out through the line's forwarder and came back from it: both sides of the line
work for this host. So a line is UP while its own heartbeat came back within UP_WITHIN s
(they go every second), UNREACHABLE otherwise (never heard, or not for a while: the report
says how long). Any heartbeat heard tells a line whose forwarder forwards to this host but
does not take this host's messages (a publish endpoint that is wrong or refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from tickmesh.bus.sockets import Line

UP_WITHIN = 3.0
UP, UNREACHABLE = "up", "unreachable"


@dataclass
class _Heard:
    """When a line last brought a heartbeat, and the supervisor's own (None: never)."""

    any_at: float | None = None
    own_at: float | None = None


class Reach:
    def __init__(self, lines: Iterable[Line], served: str | None) -> None:
        """`lines`: the bus's lines; `served`: the name of the line whose forwarder this host
        runs (None: none)."""
        self._lines = tuple(lines)
        self._served = served
        self._heard = {line.name: _Heard() for line in self._lines}

    def heard(self, line: str, own: bool, now: float) -> None:
        """A heartbeat came on `line` at `now`; `own`: the supervisor's own."""
        heard = self._heard[line]
        heard.any_at = now
        if own:
            heard.own_at = now

    def up(self, line: str, now: float) -> bool:
        own = self._heard[line].own_at
        return own is not None and now - own <= UP_WITHIN

    def report(self, now: float) -> list[dict[str, Any]]:
        """Each line: its name, endpoints, whether its forwarder runs here, its state (UP or
        UNREACHABLE) and the seconds since its own and any heartbeat came (None: never)."""
        return [{"line": line.name, "publish": line.publish, "subscribe": line.subscribe,
                 "forwarder_here": line.name == self._served,
                 "state": UP if self.up(line.name, now) else UNREACHABLE,
                 "own_heartbeat_age": _age(self._heard[line.name].own_at, now),
                 "heartbeat_age": _age(self._heard[line.name].any_at, now)}
                for line in self._lines]


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else round(max(now - at, 0.0), 3)
