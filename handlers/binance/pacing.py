"""Binance REST requests paced under Binance's limits. Pure: time comes in as `now` (ns since
the epoch).

Binance counts request weight per IP per minute (6000 by default; /api/v3/depth weighs 5 to
250 by its limit), answers 429 past it, and bans the IP (418, for 2 minutes to 3 days) when a
client goes on regardless; both answers say in Retry-After how many seconds to wait. Every
answer says how much weight the IP has used in Binance's current minute (other clients' on
that IP too). A reconnect with many symbols must not fire all its snapshot requests at once,
so they wait in a queue, first come first served, and one goes out only while
- no hold is running: after a 429 or a 418 (`hold`), nothing goes out until its Retry-After
  has passed;
- fewer than `max_in_flight` requests are unanswered. The slot is the request's, not the
  symbol's: a request superseded by a newer one for its symbol (`remove`) keeps its slot until
  its answer comes, and that answer frees only its own slot (`done` says it was superseded);
- its weight fits within `weight_per_minute`, counting both the weight sent in the last WINDOW
  seconds (a rolling window: stricter than Binance's fixed minutes) and what Binance last
  reported for its current minute plus what was sent since (`report`);
- and, once either count has reached SLOW_AT of the budget, the last request went out at
  least WINDOW * weight / weight_per_minute seconds ago: the even pace that would spend the
  whole budget over a minute, so that nearing the limit slows requests down.
The weight sent, Binance's report and a hold outlive a connection (the limits are the IP's);
what waits or is in flight ends with it (`reset`).
"""

from __future__ import annotations

from collections import Counter, deque

WINDOW = 60.0
NS = 1_000_000_000
MINUTE = 60 * NS
SLOW_AT = 0.8
"""Of the budget, used: from there on requests go out at its even pace."""
BANNED = 418


class SnapshotPacer:
    def __init__(self, weight: int, weight_per_minute: int, max_in_flight: int) -> None:
        if not 0 < weight <= weight_per_minute or max_in_flight < 1:
            raise ValueError(f"cannot pace requests of weight {weight} under "
                             f"{weight_per_minute} per minute, {max_in_flight} at once")
        self.weight = weight
        self.weight_per_minute = weight_per_minute
        self.max_in_flight = max_in_flight
        self.pace = int(WINDOW * NS * weight / weight_per_minute)
        self.waiting: dict[str, None] = {}  # an ordered set
        self.in_flight: Counter[str] = Counter()  # symbol -> its unanswered requests
        self.superseded: Counter[str] = Counter()  # of those, the ones superseded
        self.outstanding = 0  # unanswered requests, superseded ones too
        self.sent: deque[int] = deque()  # when each request went out
        self.held_until = 0
        self.held_status = 0
        self.reported: tuple[int, int] | None = None  # (weight, when): Binance's count
        self.sent_since_report = 0

    def add(self, symbol: str) -> None:
        """Queue a request for `symbol` (once: a symbol already waiting keeps its place)."""
        self.waiting.setdefault(symbol, None)

    def retry(self, symbol: str) -> None:
        """Queue `symbol` first in line: its request was refused."""
        self.waiting = {symbol: None, **self.waiting}

    def remove(self, symbol: str) -> None:
        """`symbol` no longer waits, and a request of it in flight is superseded."""
        self.waiting.pop(symbol, None)
        if self.in_flight[symbol]:
            self.superseded[symbol] = self.in_flight[symbol]

    def done(self, symbol: str) -> bool:
        """A request for `symbol` was answered (or failed): its slot is free. False if it was
        superseded, or not in flight at all; a symbol's superseded requests are taken to be
        answered first."""
        if not self.in_flight[symbol]:
            return False
        self.outstanding -= 1
        _decrement(self.in_flight, symbol)
        if self.superseded[symbol]:
            _decrement(self.superseded, symbol)
            return False
        return True

    def reset(self) -> None:
        """The connection ended: nothing waits, nothing is in flight any more."""
        self.waiting.clear()
        self.in_flight.clear()
        self.superseded.clear()
        self.outstanding = 0

    def hold(self, status: int, seconds: float, now: int) -> bool:
        """Binance refused a request with `status` (429 or 418) and Retry-After `seconds`:
        nothing goes out before then. True if that is news: no hold was running, or this
        one ends over a second later, or it is a ban where the hold was not."""
        until = now + int(seconds * NS)
        banned = status == BANNED and self.held_status != BANNED
        news = now >= self.held_until or until > self.held_until + NS or banned
        self.held_until = max(self.held_until, until)
        if news:
            self.held_status = status
        return news

    def held(self, now: int) -> bool:
        return now < self.held_until

    def report(self, used: int, now: int) -> None:
        """Binance says the IP has used `used` weight in its current minute."""
        last = self.reported
        if last is not None and last[1] // MINUTE == now // MINUTE and used < last[0]:
            return  # an answer that took longer: older news (the count only grows)
        self.reported = (used, now)
        self.sent_since_report = 0

    def take(self, now: int) -> list[str]:
        """The symbols whose request may go out now (counted as sent and in flight)."""
        out = []
        while (self.waiting and self.outstanding < self.max_in_flight
               and self._ready_at(now) <= now):
            symbol = next(iter(self.waiting))
            del self.waiting[symbol]
            self.in_flight[symbol] += 1
            self.outstanding += 1
            self.sent.append(now)
            self.sent_since_report += 1
            out.append(symbol)
        return out

    def wait(self, now: int) -> float | None:
        """Seconds until the next waiting request may go; None when none waits, or when only
        an answer (`done`) can make room."""
        if not self.waiting or self.outstanding >= self.max_in_flight:
            return None
        ready = self._ready_at(now)
        return (ready - now) / NS if ready > now else None

    def used(self, now: int) -> int:
        """The weight used in the last minute: ours, or Binance's count, if more."""
        return max(self._ours(now), self._binances(now))

    def _ready_at(self, now: int) -> int:
        """When the hold, the weight budget and the pace let the next request go."""
        return max(self.held_until, self._room_at(now), self._paced_at(now))

    def _room_at(self, now: int) -> int:
        at = 0
        if self._ours(now) + self.weight > self.weight_per_minute:
            at = self.sent[0] + int(WINDOW * NS)
        if self._binances(now) + self.weight > self.weight_per_minute:
            at = max(at, (now // MINUTE + 1) * MINUTE)
        return at

    def _paced_at(self, now: int) -> int:
        if self.sent and self.used(now) >= SLOW_AT * self.weight_per_minute:
            return self.sent[-1] + self.pace
        return 0

    def _ours(self, now: int) -> int:
        while self.sent and self.sent[0] <= now - WINDOW * NS:
            self.sent.popleft()
        return len(self.sent) * self.weight

    def _binances(self, now: int) -> int:
        if self.reported is None or self.reported[1] // MINUTE != now // MINUTE:
            return 0  # none yet, or a new minute at Binance: its count starts again
        return self.reported[0] + self.sent_since_report * self.weight


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if not counter[key]:
        del counter[key]
