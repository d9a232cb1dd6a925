"""What the heartbeat monitor watches, and its checks, as a pure state machine: told what came
off the bus and when (seconds since the epoch, from any clock: tests pass fake ones), it says
which alerts to raise or clear (consumers.monitor.alerts) and which processes look hung. No I/O: the
monitor (consumers.monitor) feeds it and carries out what it says.

Alerts follow what is known. A process whose heartbeat says it is its last (`final`: it
stopped on purpose: `tickmesh stop`, a reload, its work ended, or it crashed and exits) is not
watched any more, and its feeds neither, once it was their only publisher: their open alerts
are resolved (cleared at once, consumers.monitor.alerts) and none is raised until a new life of the
process heartbeats, or the feed publishes again. A process that falls silent without a final
heartbeat (killed outright, hung) is alarming. Feeds and processes are tied by the publisher
epoch their events and heartbeats share; a heartbeat of a new epoch ends the previous life.

Checks, each an alert keyed by (subject, symbol, what):
  heartbeat_stopped   a process (any: handler, simulator, consumer, forwarder, supervisor) sent
                      no heartbeat for `heartbeat_timeout` s, and no final one. Once for
                      `restart_after` s, it is a hung candidate: the monitor asks the
                      supervisor to restart it if the supervisor says that same pid is running.
                      None is a candidate while no process's heartbeat is fresh (the bus, or the
                      monitor, is what is stuck).
Per configured feed (a provider: its events' `p`), by its market's phase (consumers.monitor.hours):
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
  symbol_refused      the venue refused a symbol (that symbol's Status "error", with the venue's
                      message), at any hour, until it accepts it (that symbol's Status
                      "subscribed") or the life of the handler it refused ends.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Iterator, NamedTuple

from tickmesh.consumers.monitor.alerts import Alerts, Key, Transition
from tickmesh.consumers.monitor.hours import ALWAYS, POST, PRE, REGULAR, MarketHours, calendar_names
from tickmesh.runtime.settings import require

HEARTBEAT_STOPPED = "heartbeat_stopped"
SILENT_CONNECTION = "silent_connection"
SYMBOL_STALE = "symbol_stale"
RECONNECT_STORM = "reconnect_storm"
GAP_RATE = "gap_rate"
SYMBOL_REFUSED = "symbol_refused"
CHECKS = (HEARTBEAT_STOPPED, SILENT_CONNECTION, SYMBOL_STALE, RECONNECT_STORM, GAP_RATE,
          SYMBOL_REFUSED)
MAX_PUBLISHERS = 64  # publisher epochs remembered per feed (the oldest forgotten first)

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


class Refusal(NamedTuple):
    message: str  # the venue's
    epoch: int  # of the handler it refused


class FeedWatch:
    """One feed: its connection, when it last sent data (in all, and per symbol), its
    disconnects, gaps and refused symbols, and the publishers (epochs) it comes from; stopped
    once the last of them stopped on purpose."""

    def __init__(self, name: str, settings: FeedSettings, now: float) -> None:
        self.name = name
        self.settings = settings
        self.hours = MarketHours(settings.calendar)
        self.up: bool | None = None  # None: no connection Status seen yet
        self.last_data = now  # or when the connection came up, or the monitor started
        self.symbols: dict[str, float] = {}
        self.disconnects = Window(settings.window)
        self.gaps = Window(settings.window)
        self.refusals: dict[str, Refusal | None] = {}  # None: no longer refused
        self.publishers: dict[int, None] = {}  # epochs, oldest first
        self.stopped = False

    def data(self, symbol: str, epoch: int, now: float) -> None:
        self._from(epoch, now)
        self.last_data = now
        self.symbols[symbol] = now

    def status(self, state: str, symbol: str, epoch: int, now: float, message: str) -> None:
        self._from(epoch, now)
        if symbol:
            self._symbol_status(state, symbol, epoch, now, message)
            return
        if state == "subscribed":
            self.up = True
            self.last_data = max(self.last_data, now)  # the silence counts from now
            self.symbols = {name: max(last, now) for name, last in self.symbols.items()}
        elif state in ("connecting", "connected", "authenticated", "disconnected"):
            self.up = False
        if state == "disconnected":
            self.disconnects.add(now)

    def _symbol_status(self, state: str, symbol: str, epoch: int, now: float,
                       message: str) -> None:
        if state == "resyncing":
            self.gaps.add(now)
        elif state == "error":
            self.refusals[symbol] = Refusal(message, epoch)
        elif state == "subscribed" and symbol in self.refusals:
            self.refusals[symbol] = None

    def _from(self, epoch: int, now: float) -> None:
        """An event of the publisher `epoch`: a stopped feed is back, watched afresh."""
        self.publishers[epoch] = None
        if len(self.publishers) > MAX_PUBLISHERS:
            del self.publishers[next(iter(self.publishers))]
        if self.stopped:
            self.stopped, self.up, self.last_data, self.symbols = False, None, now, {}

    def end(self, epoch: int) -> None:
        """The life of publisher `epoch` ended: what it was refused is no longer."""
        self.publishers.pop(epoch, None)
        for symbol, refusal in self.refusals.items():
            if refusal is not None and refusal.epoch == epoch:
                self.refusals[symbol] = None

    def stop(self, epoch: int) -> bool:
        """Publisher `epoch` stopped on purpose; True if it was the feed's last: stopped."""
        if epoch not in self.publishers:
            return False
        self.end(epoch)
        self.stopped = not self.publishers
        if self.stopped:
            self.refusals.clear()
        return self.stopped

    def looks(self, now: float) -> Iterator[Look]:
        if self.stopped:
            return
        phase = self.hours.phase(now)
        yield self._silent(phase, now)
        yield from self._stale_symbols(phase, now)
        yield self._reconnects(now)
        yield self._gap_rate(now)
        yield from self._refused()

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

    def _refused(self) -> Iterator[Look]:
        for symbol, refusal in self.refusals.items():
            key = Key(self.name, symbol, SYMBOL_REFUSED)
            if refusal is None:
                yield key, False, f"{symbol} is no longer refused"
            else:
                yield key, True, f"the venue refused {symbol}: {refusal.message}"


class Beat(NamedTuple):
    """A process's last heartbeat: when it came, and its pid and publisher epoch."""

    at: float
    pid: int
    epoch: int


class Watch:
    """Every process's heartbeats and every configured feed's data, and their alerts."""

    def __init__(self, feeds: dict[str, FeedSettings], *, heartbeat_timeout: float,
                 restart_after: float, clear_after: float, now: float) -> None:
        self.feeds = {name: FeedWatch(name, settings, now) for name, settings in feeds.items()}
        self.heartbeat_timeout = heartbeat_timeout
        self.restart_after = restart_after
        self.alerts = Alerts(clear_after)
        self.processes: dict[str, Beat] = {}  # the processes heartbeating, by name
        self._resolved: list[Transition] = []  # alerts resolved since the last tick

    def heartbeat(self, name: str, pid: int, now: float, *, epoch: int = 0,
                  final: bool = False) -> None:
        """A heartbeat of process `name`; `final`: it stopped on purpose."""
        known = self.processes.get(name)
        if final:
            self._stopped(name, pid, epoch, current=known is None or known.epoch == epoch)
            return
        if known is not None and known.epoch != epoch:
            for feed in self.feeds.values():  # its previous life ended without a word
                feed.end(known.epoch)
        self.processes[name] = Beat(now, pid, epoch)

    def data(self, provider: str, symbol: str, now: float, *, epoch: int = 0) -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.data(symbol, epoch, now)

    def status(self, provider: str, symbol: str, state: str, now: float, *, epoch: int = 0,
               message: str = "") -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.status(state, symbol, epoch, now, message)

    def gap(self, provider: str, now: float) -> None:
        feed = self.feeds.get(provider)
        if feed:
            feed.gaps.add(now)

    def tick(self, now: float) -> list[Transition]:
        """Look at every check now: the alerts raised or cleared (those resolved first)."""
        out, self._resolved = self._resolved, []
        for key, bad, message in self._looks(now):
            transition = self.alerts.look(key, bad, now, message)
            if transition:
                out.append(transition)
        return out

    def hung(self, now: float) -> list[tuple[str, int]]:
        """(name, pid) of the processes silent for restart_after s, while others are not."""
        if not self.restart_after or not any(
                now - beat.at <= self.heartbeat_timeout for beat in self.processes.values()):
            return []
        return [(name, beat.pid) for name, beat in self.processes.items()
                if now - beat.at >= self.restart_after]

    def phases(self, now: float) -> dict[str, str]:
        """Each feed's market phase now."""
        return {name: feed.hours.phase(now) for name, feed in self.feeds.items()}

    def _stopped(self, name: str, pid: int, epoch: int, *, current: bool) -> None:
        """Process `name`'s life `epoch` stopped on purpose (`current`: its latest life)."""
        why = f"{name} (pid {pid}) stopped on purpose"
        if current:
            self.processes.pop(name, None)
            self._resolved += self.alerts.resolve(
                lambda key: key == Key(name, "", HEARTBEAT_STOPPED), why)
        for feed in self.feeds.values():
            if feed.stop(epoch):
                self._resolved += self.alerts.resolve(partial(_of_feed, feed.name),
                                                      f"its handler {why}")

    def _looks(self, now: float) -> Iterator[Look]:
        for name, beat in self.processes.items():
            quiet = now - beat.at
            yield (Key(name, "", HEARTBEAT_STOPPED), quiet > self.heartbeat_timeout,
                   f"no heartbeat from pid {beat.pid} for {quiet:.1f} s "
                   f"(limit {self.heartbeat_timeout:g} s)")
        for feed in self.feeds.values():
            yield from feed.looks(now)


def _of_feed(name: str, key: Key) -> bool:
    """Is `key` an alert of the feed `name` (not of a process of that name)?"""
    return key.subject == name and key.what != HEARTBEAT_STOPPED
