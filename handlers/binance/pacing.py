"""Depth snapshot requests paced under Binance's REST limits. Pure: time comes in as `now`
(ns since the epoch).

Binance counts request weight per IP per minute (6000 by default; /api/v3/depth weighs 5 to
250 by its limit) and answers 429, then bans the IP (418), when a client goes over. A
reconnect with many symbols must not fire all its snapshot requests at once, so they wait in
a queue, first come first served, and one goes out only while
- fewer than `max_in_flight` requests are unanswered, and
- the weight sent in the last WINDOW seconds plus its own stays within `weight_per_minute`
  (a rolling window: stricter than Binance's fixed minutes, so never over).
The weight already spent is kept across reconnects (the limit is the IP's, not the
connection's); what waits or is in flight ends with the connection (`reset`).
"""

from __future__ import annotations

from collections import deque

WINDOW = 60.0
NS = 1_000_000_000


class SnapshotPacer:
    def __init__(self, weight: int, weight_per_minute: int, max_in_flight: int) -> None:
        if not 0 < weight <= weight_per_minute or max_in_flight < 1:
            raise ValueError(f"cannot pace requests of weight {weight} under "
                             f"{weight_per_minute} per minute, {max_in_flight} at once")
        self.weight = weight
        self.weight_per_minute = weight_per_minute
        self.max_in_flight = max_in_flight
        self.waiting: dict[str, None] = {}  # an ordered set
        self.in_flight: set[str] = set()
        self.sent: deque[int] = deque()  # when each request went out

    def add(self, symbol: str) -> None:
        """Queue a request for `symbol` (once: a symbol already waiting keeps its place)."""
        self.waiting.setdefault(symbol, None)

    def remove(self, symbol: str) -> None:
        self.waiting.pop(symbol, None)

    def done(self, symbol: str) -> None:
        """The request for `symbol` was answered (or failed)."""
        self.in_flight.discard(symbol)

    def reset(self) -> None:
        """The connection ended: nothing waits, nothing is in flight any more."""
        self.waiting.clear()
        self.in_flight.clear()

    def take(self, now: int) -> list[str]:
        """The symbols whose request may go out now (counted as sent and in flight)."""
        out = []
        while self.waiting and len(self.in_flight) < self.max_in_flight and self._room(now):
            symbol = next(iter(self.waiting))
            del self.waiting[symbol]
            self.in_flight.add(symbol)
            self.sent.append(now)
            out.append(symbol)
        return out

    def wait(self, now: int) -> float | None:
        """Seconds until the weight budget lets the next waiting request go; None when none
        waits, or when only an answer (`done`) can make room."""
        if not self.waiting or len(self.in_flight) >= self.max_in_flight or self._room(now):
            return None
        return max(0.0, (self.sent[0] + WINDOW * NS - now) / NS)

    def used(self, now: int) -> int:
        """The weight sent in the last minute."""
        self._forget(now)
        return len(self.sent) * self.weight

    def _room(self, now: int) -> bool:
        return self.used(now) + self.weight <= self.weight_per_minute

    def _forget(self, now: int) -> None:
        while self.sent and self.sent[0] <= now - WINDOW * NS:
            self.sent.popleft()
