"""What processes publish, collected by a real bus subscriber as it arrives, and waited on with
a deadline: the tests' one way to watch the bus.

    with BusLog(forwarder.subscribe, ["trade.alpaca", "status.alpaca"]) as bus:
        bus.until(lambda events: len(bus.of(Trade)) >= 5, what="five trades")
        mark = bus.mark()
        ...                                   # something happens
        bus.until(lambda _: "disconnected" in bus.states(mark), what="a disconnect")
"""

from __future__ import annotations

from typing import Callable, TypeVar

from tickmesh.bus import Heartbeat, Status, Subscriber
from tests.waiting import wait_until

T = TypeVar("T")
DRAIN_AT_MOST = 10_000
"""Events read per look at the condition, so that a fast feed cannot starve the deadline."""
RECONNECTION = ("disconnected", "connecting", "connected", "subscribed")


class BusLog:
    def __init__(self, endpoint: str, patterns: list[str]) -> None:
        self.sub = Subscriber(endpoint, patterns)
        self.events: list = []

    def __enter__(self) -> "BusLog":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sub.close()

    def until(self, condition: Callable[[list], T], what: str = "events",
              timeout: float = 15.0) -> T:
        """Collect until `condition(events)` is truthy, and return it; fail after `timeout` s."""
        return wait_until(lambda: condition(self._collect()), timeout=timeout, what=what)

    def read(self) -> list:
        """Take in what has arrived (waiting up to 0.05 s for a first event), and return every
        event so far: for conditions polled outside `until`."""
        return self._collect()

    def _collect(self) -> list:
        wait = 0.05  # for the first event; then take what has arrived
        for _ in range(DRAIN_AT_MOST):
            event = self.sub.recv(timeout=wait)
            if event is None:
                break
            self.events.append(event)
            wait = 0
        return self.events

    def mark(self) -> int:
        """A place in the log, for `since` arguments: what comes after now."""
        return len(self.events)

    def of(self, kind: type, since: int = 0) -> list:
        return [e for e in self.events[since:] if isinstance(e, kind)]

    def heartbeats(self, process: str, since: int = 0) -> list[Heartbeat]:
        """The heartbeats of `process` (a Heartbeat's provider is its process's name)."""
        return [h for h in self.of(Heartbeat, since) if h.provider == process]

    def heartbeat(self, process: str, since: int = 0) -> Heartbeat | None:
        """The latest heartbeat of `process` (None before its first)."""
        beats = self.heartbeats(process, since)
        return beats[-1] if beats else None

    def metric(self, process: str, name: str, since: int = 0, **labels: str) -> float:
        """The highest value of the metric `name` (with `labels`) in `process`'s heartbeats
        (0.0 before its first)."""
        return max((h.metric(name, **labels) for h in self.heartbeats(process, since)),
                   default=0.0)

    def states(self, since: int = 0) -> list[str]:
        return [s.state for s in self.of(Status, since)]

    def state_codes(self, since: int = 0) -> list[tuple[str, int]]:
        return [(s.state, s.code) for s in self.of(Status, since)]

    def resubscribed(self, since: int = 0) -> int | None:
        """Where the connection, since `since`, was lost and then rebuilt all the way to
        subscribed: the index of that last "subscribed" Status (None if it has not been)."""
        path = [(i, e.state) for i, e in enumerate(self.events[since:], since)
                if isinstance(e, Status) and e.state in RECONNECTION]
        states = tuple(state for _, state in path)
        if "disconnected" not in states or states[-len(RECONNECTION):] != RECONNECTION:
            return None
        return path[-1][0]
