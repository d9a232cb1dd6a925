"""What the heartbeat monitor watches, and its checks, as a pure state machine: told what came
off the bus and when (seconds since the epoch, from any clock: tests pass fake ones), it says
which alerts to raise or clear (consumers.alerts) and which processes look hung. No I/O: the
monitor (consumers.monitor) feeds it and carries out what it says.

Checks, each an alert keyed by (subject, symbol, what):
  heartbeat_stopped   a process (any: handler, simulator, consumer, forwarder, supervisor) sent
                      no heartbeat for `heartbeat_timeout` s. Once for `restart_after` s, it is
                      a hung candidate: the monitor asks the supervisor to restart it if the
                      supervisor says that same pid is running. None is a candidate while no
                      process's heartbeat is fresh (the bus, or the monitor, is what is stuck).
Per configured feed (a provider: its events' `p`), by its market's phase (consumers.hours):
  silent_connection   the feed's connection is up (its last connection Status is "subscribed",
                      or none was seen) but no trade, quote or book event came for
                      `silent_after` s in regular hours, `silent_after_extended` s in pre- and
                      post-market (0: no alarm then); never while the market is closed. While
                      the connection is down, the handler's own Status events tell the story:
                      the alert is held as it is.
  symbol_stale        one symbol sent nothing for `symbol_stale_after` s in regular hours while
                      the feed itself kept sending (a silent feed is the alert above).
  reconnect_storm     more than `max_reconnects` disconnects (Status "disconnected") within
                      `window` s, at any hour.
  gap_rate            gaps per minute, over `window` s, above `max_gap_rate`, at any hour: bus
                      gaps on the feed's topics that the monitor saw, and provider-side ones
                      (a symbol's Status "resyncing": a lost message, its book rebuilt).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterator

from consumers.alerts import Alerts, Key, Transition
from consumers.hours import ALWAYS, POST, PRE, REGULAR, MarketHours, calendar_names
from runtime.settings import require

HEARTBEAT_STOPPED = "heartbeat_stopped"
SILENT_CONNECTION = "silent_connection"
SYMBOL_STALE = "symbol_stale"
RECONNECT_STORM = "reconnect_storm"
GAP_RATE = "gap_rate"
CHECKS = (HEARTBEAT_STOPPED, SILENT_CONNECTION, SYMBOL_STALE, RECONNECT_STORM, GAP_RATE)

Look = tuple[Key, "bool | None", str]  # an alert's key, its condition now, and why


@dataclass(frozen=True, kw_only=True)
class FeedSettings:
    """One feed's thresholds: `[children.settings.feeds.NAME]` of the monitor's config."""

    calendar: str = "24/7"  # "24/7", or an exchange-calendars name: "XNYS", "XNAS", "XLON", ...
    silent_after: float = 10.0  # regular hours; 0: no alarm
    silent_after_extended: float = 0.0  # pre- and post-market; 0: no alarm
    symbol_stale_after: float = 60.0  # regular hours; 0: no alarm
    max_reconnects: int = 5  # disconnects allowed within `window`
    window: float = 60.0
    max_gap_rate: float = 6.0  # gaps per minute, over `window`

    def __post_init__(self) -> None:
        for key in ("silent_after", "silent_after_extended", "symbol_stale_after",
                    "max_gap_rate"):
            require(getattr(self, key) >= 0, key, "a number >= 0", getattr(self, key))
        require(self.max_reconnects >= 0, "max_reconnects", "an integer >= 0",
                self.max_reconnects)
        require(self.window > 0, "window", "a number > 0", self.window)
        require(self.calendar == ALWAYS or self.calendar in calendar_names(), "calendar",
                "\"24/7\" or an exchange calendar's name (XNYS, XNAS, XLON, ...)", self.calendar)


class Window:
    """Times of events within the last `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self._times.append(now)

    def count(self, now: float) -> int:
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()
        return len(self._times)


class FeedWatch:
    """One feed: its connection, when it last sent data (in all, and per symbol), its
    disconnects and gaps."""

    def __init__(self, name: str, settings: FeedSettings, now: float) -> None:
        self.name = name
        self.settings = settings
        self.hours = MarketHours(settings.calendar)
        self.up: bool | None = None  # None: no connection Status seen yet
        self.last_data = now  # or when the connection came up, or the monitor started
        self.symbols: dict[str, float] = {}
        self.disconnects = Window(settings.window)
        self.gaps = Window(settings.window)

    def data(self, symbol: str, now: float) -> None:
        self.last_data = now
        self.symbols[symbol] = now

    def status(self, state: str, symbol: str, now: float) -> None:
        if symbol:
            if state == "resyncing":
                self.gaps.add(now)
            return
        if state == "subscribed":
            self.up = True
            self.last_data = max(self.last_data, now)  # the silence counts from now
            self.symbols = {name: max(last, now) for name, last in self.symbols.items()}
        elif state in ("connecting", "connected", "authenticated", "disconnected"):
            self.up = False
        if state == "disconnected":
            self.disconnects.add(now)

    def looks(self, now: float) -> Iterator[Look]:
        phase = self.hours.phase(now)
        yield self._silent(phase, now)
        yield from self._stale_symbols(phase, now)
        yield self._reconnects(now)
        yield self._gap_rate(now)

    def _silent(self, phase: str, now: float) -> Look:
        key = Key(self.name, "", SILENT_CONNECTION)
        limit = {REGULAR: self.settings.silent_after, PRE: self.settings.silent_after_extended,
                 POST: self.settings.silent_after_extended}.get(phase, 0.0)
        quiet = now - self.last_data
        if not limit:
            return key, False, f"market {phase}: silence is expected"
        if self.up is False:
            return key, None, "connection down"
        return key, quiet > limit, (f"no data for {quiet:.1f} s with the connection up "
                                    f"(limit {limit:g} s, market {phase})")

    def _stale_symbols(self, phase: str, now: float) -> Iterator[Look]:
        limit = self.settings.symbol_stale_after
        feed_alive = now - self.last_data < limit
        for symbol, last in self.symbols.items():
            key = Key(self.name, symbol, SYMBOL_STALE)
            if phase != REGULAR or not limit:
                yield key, False, f"market {phase}: a quiet symbol is expected"
            elif self.up is False or not feed_alive:
                yield key, None, "the whole feed is silent or down"
            else:
                quiet = now - last
                yield key, quiet > limit, (f"no data for {symbol} for {quiet:.1f} s while the "
                                           f"feed sends (limit {limit:g} s)")

    def _reconnects(self, now: float) -> Look:
        count, limit = self.disconnects.count(now), self.settings.max_reconnects
        return (Key(self.name, "", RECONNECT_STORM), count > limit,
                f"{count} disconnects in {self.settings.window:g} s (limit {limit})")

    def _gap_rate(self, now: float) -> Look:
        rate = self.gaps.count(now) * 60.0 / self.settings.window
        limit = self.settings.max_gap_rate
        return (Key(self.name, "", GAP_RATE), rate > limit,
                f"{rate:.1f} gaps a minute over {self.settings.window:g} s (limit {limit:g})")


class Watch:
    """Every process's heartbeats and every configured feed's data, and their alerts."""

    def __init__(self, feeds: dict[str, FeedSettings], *, heartbeat_timeout: float,
                 restart_after: float, clear_after: float, now: float) -> None:
        self.feeds = {name: FeedWatch(name, settings, now) for name, settings in feeds.items()}
        self.heartbeat_timeout = heartbeat_timeout
        self.restart_after = restart_after
        self.alerts = Alerts(clear_after)
        self.processes: dict[str, tuple[float, int]] = {}  # name: (last heartbeat, its pid)

    def heartbeat(self, name: str, pid: int, now: float) -> None:
        self.processes[name] = (now, pid)

    def data(self, provider: str, symbol: str, now: float) -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.data(symbol, now)

    def status(self, provider: str, symbol: str, state: str, now: float) -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.status(state, symbol, now)

    def gap(self, provider: str, now: float) -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.gaps.add(now)

    def tick(self, now: float) -> list[Transition]:
        """Look at every check now: the alerts raised or cleared."""
        out = []
        for key, bad, message in self._looks(now):
            transition = self.alerts.look(key, bad, now, message)
            if transition:
                out.append(transition)
        return out

    def hung(self, now: float) -> list[tuple[str, int]]:
        """(name, pid) of the processes silent for restart_after s, while others are not."""
        if not self.restart_after or not any(
                now - last <= self.heartbeat_timeout for last, _ in self.processes.values()):
            return []
        return [(name, pid) for name, (last, pid) in self.processes.items()
                if now - last >= self.restart_after]

    def phases(self, now: float) -> dict[str, str]:
        """Each feed's market phase now."""
        return {name: feed.hours.phase(now) for name, feed in self.feeds.items()}

    def _looks(self, now: float) -> Iterator[Look]:
        for name, (last, pid) in self.processes.items():
            quiet = now - last
            yield (Key(name, "", HEARTBEAT_STOPPED), quiet > self.heartbeat_timeout,
                   f"no heartbeat from pid {pid} for {quiet:.1f} s "
                   f"(limit {self.heartbeat_timeout:g} s)")
        for feed in self.feeds.values():
            yield from feed.looks(now)

