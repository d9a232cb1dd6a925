"""Alerts with hysteresis: one machine per (subject, symbol, check), told at every look whether
its condition is bad, with the time; it says when to publish "raised" and "cleared". No I/O:
the heartbeat monitor (consumers.monitor) publishes what it returns.

    ok --(bad)--> raised --(not bad for clear_after s, without a break)--> ok
                  raised --(resolved: its subject stopped on purpose)--> ok, at once

An alert is raised once, at the first bad look (the threshold, e.g. "silent for 10 s", is in
the condition), and cleared once, when its condition has been fine for `clear_after` seconds
in a row: a condition that flickers does not flood the bus. A look with no opinion (None: e.g.
the feed's connection is down, so whether it is silent says nothing) changes nothing. An alert
whose subject is known to have stopped on purpose (its process's final heartbeat) is resolved:
cleared at once if raised, and forgotten, so that the subject's next life starts from ok.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

RAISED, CLEARED = "raised", "cleared"


class Key(NamedTuple):
    subject: str  # a process or a feed (provider)
    symbol: str  # "" unless the check is about one symbol
    what: str  # the check: heartbeat_stopped, silent_connection, symbol_stale, ...


class Transition(NamedTuple):
    key: Key
    state: str  # RAISED or CLEARED
    message: str


class AlertMachine:
    def __init__(self, clear_after: float) -> None:
        self.clear_after = clear_after
        self.raised = False
        self._fine_since: float | None = None

    def look(self, bad: bool | None, now: float) -> str | None:
        """The condition's value now; RAISED or CLEARED when the alert changes."""
        if bad is None:
            return None
        if bad:
            self._fine_since = None
            if not self.raised:
                self.raised = True
                return RAISED
            return None
        if not self.raised:
            return None
        if self._fine_since is None:
            self._fine_since = now
        if now - self._fine_since >= self.clear_after:
            self.raised, self._fine_since = False, None
            return CLEARED
        return None


class Alerts:
    """Every alert's machine, by key, made at its first look."""

    def __init__(self, clear_after: float) -> None:
        self.clear_after = clear_after
        self.machines: dict[Key, AlertMachine] = {}

    def look(self, key: Key, bad: bool | None, now: float, message: str) -> Transition | None:
        machine = self.machines.get(key)
        if machine is None:
            if not bad:
                return None  # nothing to clear: no machine needed yet
            machine = self.machines[key] = AlertMachine(self.clear_after)
        state = machine.look(bad, now)
        return Transition(key, state, message) if state else None

    def resolve(self, which: Callable[[Key], bool], message: str) -> list[Transition]:
        """Forget the alerts `which` picks: CLEARED, with `message`, for those raised."""
        keys = [key for key in self.machines if which(key)]
        return [Transition(key, CLEARED, message) for key in keys
                if self.machines.pop(key).raised]

    def active(self) -> list[Key]:
        return [key for key, machine in self.machines.items() if machine.raised]
