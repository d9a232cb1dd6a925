"""The life of every tickmesh child process, handler, simulator or consumer alike:

    @dataclass(frozen=True, kw_only=True)
    class Settings: ...                     # its settings table (runtime.settings)

    async def work(ctx: ProcessContext[Settings]) -> None: ...    # until cancelled

    def main() -> None:
        process.run(work, Settings)

`run` reads the spec the supervisor handed over (runtime.spec), reads the settings table into
`Settings` (bad settings: one log line naming the key, and exit code 2, which the supervisor
does not restart), sets up logging (runtime.logs), the lifeline (runtime.lifeline) and the
publisher, then runs `work(ctx)` beside three duties of its own:
- a Heartbeat every second with the process's metrics (runtime.metrics);
- the publisher's subscription draining (bus.publisher says why);
- readiness: `work` starts once the publisher is connected to a forwarder (of either line,
  at most FORWARDER_WAIT s: a handler's first Status must not be lost; a forwarder that comes
  later, on another host, gets what is published from then on), and "ready" is said then,
  unless the child says it itself (`announces_ready=True`, then `ctx.ready()`: a simulator,
  once it listens; its `work` starts at once, since it publishes nothing but heartbeats).
SIGTERM or SIGINT cancels `work` and ends the process with 0; `work` raising ends it with 1.
Either way its last act is a final Heartbeat (`final` set): subscribers learn that this
publisher stopped, rather than wait for its silence.

`tickmesh check` finds a child's settings by the module attribute `Settings` (None: the child
takes no settings), the same class `run` is given.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Mapping, TypeVar

import uvloop

from tickmesh.bus import sockets
from tickmesh.bus.events import Heartbeat
from tickmesh.bus.publisher import Publisher
from tickmesh.runtime import secrets
from tickmesh.runtime.lifeline import exit_with_parent
from tickmesh.runtime.logs import configure_logging, log
from tickmesh.runtime.metrics import Counts, Metrics
from tickmesh.runtime.readiness import announce_ready
from tickmesh.runtime.settings import SettingsError, read
from tickmesh.runtime.spec import EXIT_BAD_SETTINGS, ChildSpec, child_spec

S = TypeVar("S")
HEARTBEAT_SECONDS = 1.0
FORWARDER_WAIT = 2.0
STOP_GRACE_SECONDS = 2.0


@dataclass
class ProcessContext(Generic[S]):
    """Handed to a child's main coroutine."""

    spec: ChildSpec
    settings: S
    publisher: Publisher
    metrics: Metrics

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def counts(self) -> Counts:
        return self.metrics.counts

    def ready(self) -> None:
        """Tell the supervisor this process is ready (for children that announce it)."""
        announce_ready()


def read_settings(settings: type[S] | None, raw: Mapping[str, Any]) -> S:
    """The settings table as `settings` (None: the table must be empty); SettingsError."""
    if settings is None:
        if raw:
            raise SettingsError(f"settings.{next(iter(raw))}: unknown key (this child takes "
                                "no settings)")
        return None  # type: ignore[return-value]
    return read(settings, raw)


def credential(variable: str) -> str:
    """The API key or secret in the environment variable `variable` (masked in every log
    line), or a placeholder that only a simulator accepts, with a warning."""
    if not secrets.secret_from_env(variable):
        log().warning("credential not set: sending a placeholder, which only a simulator "
                      "accepts", variable=variable)
    return secrets.credential(variable)


def run(main: Callable[[ProcessContext[S]], Awaitable[None]], settings: type[S] | None = None,
        *, announces_ready: bool = False, spec: ChildSpec | None = None) -> None:
    """Run `main(ctx)` as this process's life (see the module's docstring); never returns."""
    spec = spec or child_spec()
    sockets.use(spec.bus)  # its bus sockets get the bus's security (CURVE keys)
    configure_logging(spec.name)
    try:
        parsed = read_settings(settings, spec.settings)
    except SettingsError as exc:
        log().error("bad settings", error=str(exc))
        sys.exit(EXIT_BAD_SETTINGS)
    exit_with_parent()
    # one publisher connected to every line's forwarder (bus.publisher)
    publisher = Publisher(spec.bus.publish_endpoints, sndhwm=spec.bus.hwm, ready_timeout=0)
    metrics = Metrics()
    metrics.collect(lambda: [(("events_published", kind, provider), count)
                             for (kind, provider), count in publisher.stream_counts().items()])
    ctx = ProcessContext(spec, parsed, publisher, metrics)
    log().info("process starting", pid=os.getpid())
    code = uvloop.run(_supervise(main, ctx, announces_ready))
    if publisher.forwarder_ready:
        publish_heartbeat(publisher, spec.name, metrics, final=True)
    publisher.close()
    log().info("process stopped", code=code)
    sys.exit(code)


async def _supervise(main: Callable[[ProcessContext[S]], Awaitable[None]],
                     ctx: ProcessContext[S], announces_ready: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if not announces_ready:
        await _connected(ctx.publisher)
        announce_ready()
    work = asyncio.create_task(main(ctx), name="main")
    duties = [asyncio.create_task(_heartbeat(ctx), name="heartbeat"),
              asyncio.create_task(_drain_subscriptions(ctx.publisher), name="drain")]
    stopper = asyncio.create_task(stop.wait(), name="stop")
    await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if work.done() and not work.cancelled() and work.exception() is not None:
        log().error("main crashed", exc_info=work.exception())
        code = 1
    for task in (work, stopper, *duties):
        task.cancel()
    await asyncio.wait({work, stopper, *duties}, timeout=STOP_GRACE_SECONDS)
    return code


def publish_heartbeat(publisher: Publisher, name: str, metrics: Metrics, *,
                      final: bool = False) -> None:
    """One Heartbeat of the process `name` (also used by the forwarder and the supervisor);
    `final`: its last, as it stops on purpose (bus.events.Heartbeat)."""
    now = time.time_ns()
    publisher.publish(Heartbeat(provider=name, ts_event=now, ts_recv=now, pid=os.getpid(),
                                metrics=metrics.samples(), final=final))


async def _connected(publisher: Publisher) -> None:
    """Wait, at most FORWARDER_WAIT s, for the forwarder, without blocking the loop."""
    deadline = asyncio.get_running_loop().time() + FORWARDER_WAIT
    while not publisher.wait_for_forwarder(0) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)


async def _heartbeat(ctx: ProcessContext) -> None:
    # a child that announces its own readiness (a simulator) starts before its publisher is
    # connected: its first heartbeat would be lost (its q=1 missing for every subscriber)
    await _connected(ctx.publisher)
    while True:
        publish_heartbeat(ctx.publisher, ctx.name, ctx.metrics)
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def _drain_subscriptions(publisher: Publisher) -> None:
    await _connected(publisher)  # not before: draining would take the forwarder's subscription
    while True:
        publisher.drain_subscriptions()
        await asyncio.sleep(HEARTBEAT_SECONDS)
