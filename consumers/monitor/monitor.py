"""The heartbeat monitor: watches every process's heartbeat and every configured feed's data,
raises and clears `alert` events, and has the supervisor restart a process that is alive but
hung.

    python -m tickmesh.consumers.monitor          (supervised; settings below)

Subscribes to every heartbeat, and to the trades, quotes, books and statuses of each feed in
`feeds`; the checks, their thresholds and the market hours they follow are
consumers.monitor.checks's (per feed: `[children.settings.feeds.NAME]`, FeedSettings). Every
`check_interval` s it looks at each check and, for each alert raised or cleared (with
hysteresis: consumers.monitor.alerts), publishes an `Alert` (topic `alert.SUBJECT.SYMBOL|`)
and logs it. Alerts follow what is known (consumers.monitor.checks): a process whose last
heartbeat said it stopped on purpose (`final`: exit 0, `tickmesh stop`, a reload) raises no
heartbeat_stopped, and its open alerts, its feed's too, are cleared at once; one that falls
silent without it is alarming until a new life of it heartbeats. A symbol the venue refused (its Status "error") is an alert until it is accepted.

A process whose heartbeats have stopped for `restart_after` s is asked about, once per pid, at
the supervisor's control socket (`control_endpoint`, e.g. "ipc://{run_dir}/control"): if the
supervisor says that same pid is running, the process is hung (a crashed one is the
supervisor's own business), and the monitor sends `restart NAME`.

`fake_now` is a test aid: an ISO time with its offset ("2025-07-08T10:00:00-04:00") at which
the monitor's clock starts, and from which it runs on; market hours follow that clock, so a
test can be at 10:00 on a Tuesday in New York at any real hour. Leave it empty in production.

Metrics: alerts_raised{what}, alerts_active, monitored_feeds{phase},
restart_requests{outcome}, and the consumers' events_received, bus_gaps, bus_messages_missed.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tickmesh.bus import events, topics
from tickmesh.bus.request import NoAnswer, ask_json
from tickmesh.bus.subscriber import AsyncSubscriber, Gap
from tickmesh.consumers.monitor.alerts import RAISED, Transition
from tickmesh.consumers.monitor.hours import PHASES
from tickmesh.consumers.monitor.checks import CHECKS, FeedSettings, Watch
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.settings import SettingsError, require

DATA_KINDS = ("trade", "quote", "book_snapshot", "book_delta")
CONTROL_TIMEOUT = 2.0  # seconds to wait for the supervisor's answer


@dataclass(frozen=True, kw_only=True)
class Settings:
    feeds: dict[str, FeedSettings] = field(default_factory=dict)
    heartbeat_timeout: float = 5.0  # no heartbeat this long: heartbeat_stopped
    restart_after: float = 15.0  # no heartbeat this long, yet running: restart it; 0: never
    control_endpoint: str = ""  # the supervisor's control socket; "": no restarts
    clear_after: float = 5.0  # a condition fine this long clears its alert
    check_interval: float = 0.5
    fake_now: str = ""  # a test aid: the clock starts at this ISO time (see the docstring)
    rcvhwm: int = 0  # messages the subscriber queues before dropping; 0: bus.receive_hwm

    def __post_init__(self) -> None:
        for key in ("heartbeat_timeout", "clear_after", "check_interval"):
            require(getattr(self, key) > 0, key, "a number > 0", getattr(self, key))
        require(self.restart_after == 0 or self.restart_after >= self.heartbeat_timeout,
                "restart_after", f"0 or a number >= heartbeat_timeout "
                f"({self.heartbeat_timeout:g})", self.restart_after)
        require(self.control_endpoint.split("://")[0] in ("ipc", "tcp", ""), "control_endpoint",
                "an ipc:// or tcp:// endpoint, or \"\"", self.control_endpoint)
        require(self.rcvhwm >= 0, "rcvhwm", "an integer >= 0", self.rcvhwm)
        start_time(self.fake_now)
        try:
            patterns(self)
        except topics.TopicError as exc:
            raise SettingsError(f"settings.feeds: {exc}") from None


def start_time(fake_now: str) -> float:
    """Seconds since the epoch at which the clock starts: now, or `fake_now`."""
    if not fake_now:
        return time.time()
    try:
        start = datetime.datetime.fromisoformat(fake_now)
    except ValueError:
        start = None
    require(start is not None and start.tzinfo is not None, "fake_now",
            "an ISO time with its UTC offset, e.g. \"2025-07-08T10:00:00-04:00\"", fake_now)
    return start.timestamp()


def patterns(settings: Settings) -> list[str]:
    """Every heartbeat; each feed's data and statuses."""
    out = ["heartbeat"]
    for feed in settings.feeds:
        out += [f"{kind}.{feed}" for kind in (*DATA_KINDS, "status")]
    for pattern in out:
        topics.Pattern.parse(pattern)
    return out


class Clock:
    """Seconds since the epoch, from `start` on, at the pace of the monotonic clock (a wall
    clock that jumps does not raise false alarms)."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._mono = time.monotonic()

    def now(self) -> float:
        return self._start + time.monotonic() - self._mono


def ask_supervisor(endpoint: str, command: str) -> dict[str, Any]:
    """One request on the supervisor's control socket (supervisor.control has the protocol);
    NoAnswer if none came in time. Blocking: run it in a thread."""
    return ask_json(endpoint, command.encode(), CONTROL_TIMEOUT, "supervisor", secure=True)


class Monitor:
    """Feeds the watch from the bus, and carries out what it says."""

    def __init__(self, ctx: process.ProcessContext[Settings], clock: Clock) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.clock = clock
        self.watch = Watch(ctx.settings.feeds, heartbeat_timeout=ctx.settings.heartbeat_timeout,
                           restart_after=ctx.settings.restart_after,
                           clear_after=ctx.settings.clear_after, now=clock.now())
        self.asked: set[tuple[str, int]] = set()  # (name, pid) already asked about
        self.tasks: set[asyncio.Task] = set()
        for what in CHECKS:
            ctx.counts["alerts_raised", what] += 0

    def on_event(self, event: events.AnyEvent) -> None:
        now = self.clock.now()
        if isinstance(event, events.Heartbeat):
            self.watch.heartbeat(event.provider, event.pid, now, epoch=event.epoch,
                                 final=event.final)
        elif isinstance(event, events.Status):
            self.watch.status(event.provider, event.symbol, event.state, now,
                              epoch=event.epoch, message=event.message)
        else:
            self.watch.data(event.provider, event.symbol, now, epoch=event.epoch)

    def on_gap(self, gap: Gap) -> None:
        self.ctx.counts["bus_gaps"] += 1
        self.ctx.counts["bus_messages_missed"] += gap.missed
        kind, provider, _ = topics.split(gap.topic)
        if kind != "heartbeat":
            self.watch.gap(provider, self.clock.now())

    def check(self) -> None:
        now = self.clock.now()
        for transition in self.watch.tick(now):
            self.publish(transition)
        self.ctx.counts["alerts_active"] = len(self.watch.alerts.active())
        phases = Counter(self.watch.phases(now).values())
        for phase in PHASES:
            self.ctx.counts["monitored_feeds", phase] = phases[phase]
        if self.settings.control_endpoint:
            for name, pid in self.watch.hung(now):
                if (name, pid) not in self.asked:
                    self.asked.add((name, pid))
                    self._spawn(self.restart_if_hung(name, pid))

    def publish(self, transition: Transition) -> None:
        key, state, message = transition
        if state == RAISED:
            self.ctx.counts["alerts_raised", key.what] += 1
        level = log().warning if state == RAISED else log().info
        level("alert", state=state, what=key.what, subject=key.subject, message=message,
              **({"symbol": key.symbol} if key.symbol else {}))
        now = time.time_ns()
        self.ctx.publisher.publish(events.Alert(
            provider=key.subject, symbol=key.symbol, ts_event=now, ts_recv=now, state=state,
            what=key.what, message=message))

    async def restart_if_hung(self, name: str, pid: int) -> None:
        """Restart `name` if the supervisor says its pid `pid` still runs."""
        endpoint = self.settings.control_endpoint
        try:
            status = await asyncio.to_thread(ask_supervisor, endpoint, "status")
            child = status.get("children", {}).get(name) or {}
            if child.get("state") != "running" or child.get("pid") != pid:
                outcome = "not_hung"
                log().info("silent process is not running: no restart", child=name, pid=pid,
                           state=child.get("state"), now_pid=child.get("pid"))
            else:
                answer = await asyncio.to_thread(ask_supervisor, endpoint, f"restart {name}")
                outcome = "restarted" if answer.get("ok") else "refused"
                log().warning("hung process: restart asked", child=name, pid=pid,
                              answer=answer)
        except NoAnswer as exc:
            outcome = "no_supervisor"
            log().error("hung process: cannot ask the supervisor", child=name, pid=pid,
                        error=str(exc))
        self.ctx.counts["restart_requests", outcome] += 1

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def work(ctx: process.ProcessContext[Settings]) -> None:
    monitor = Monitor(ctx, Clock(start_time(ctx.settings.fake_now)))
    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, patterns(ctx.settings),
                          rcvhwm=ctx.settings.rcvhwm or ctx.spec.bus.receive_hwm,
                          on_gap=monitor.on_gap)
    checks = asyncio.create_task(_checks(monitor, ctx.settings.check_interval), name="checks")
    try:
        await _read(sub, monitor, ctx)
    finally:
        checks.cancel()
        for task in monitor.tasks:
            task.cancel()
        sub.close()


async def _read(sub: AsyncSubscriber, monitor: Monitor, ctx: process.ProcessContext) -> None:
    async for batch in sub.batches():  # the checks run between batches
        ctx.counts["events_received"] += len(batch)
        for event in batch:
            monitor.on_event(event)


async def _checks(monitor: Monitor, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        monitor.check()


def main() -> None:
    process.run(work, Settings)


if __name__ == "__main__":
    main()
