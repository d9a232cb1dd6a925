"""The consumer SDK: a consumer is a function or a class with topic patterns, and this module
runs it as a tickmesh process. It gets, for free, what every child gets from runtime.process
(structured logging, a heartbeat every second with its metrics, readiness, a clean stop on
SIGTERM or Ctrl-C) and, from here: its events, and what the bus tells of them in order (each
gap, logged sparingly, counted in bus_gaps and bus_messages_missed and handed to `on_gap`
after the events before it and before the one that revealed it; each publisher gone silent or
stopped, counted in publishers_gone and handed to `on_publisher` after everything it sent), and
a handler that raises costs one event, not the process (consumer_errors{hook}). ZeroMQ reconnects its sockets by itself, so a
consumer outlives a restart of the forwarder (what it missed meanwhile is a gap).

A function, with its patterns:

    from tickmesh.runtime.consumer import consumer

    @consumer("quote.*.AAPL")
    def spread(quote): ...

A class (named, it is made with no arguments; or name an instance of it):

    class Flagger:
        patterns = ("trade",)
        def on_start(self, ctx): ...   # optional: the runtime.process.ProcessContext, for
                                       # ctx.publisher, ctx.counts, ctx.name
        def on_event(self, event): ...
        def on_gap(self, gap): ...     # optional: a bus.subscriber.Gap
        def on_publisher(self, gone): ...  # optional: a PublisherSilent or PublisherStopped
        def on_stop(self): ...         # optional: at the clean stop

Any of these may be `async def`. Run one by hand, or in a config for the supervisor:

    tickmesh consume tickmesh.examples.spread:monitor [--pattern P]... [--name NAME] [--config CONFIG]

    [[children]]
    name = "spread"
    run = "tickmesh.runtime.consumer"
    settings = { target = "tickmesh.examples.spread:monitor", patterns = ["quote.*.AAPL"] }

`patterns` (the settings key, or --pattern) replaces the consumer's own. `tickmesh check`
imports the target (in its own process) and refuses a config whose target is missing.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

from tickmesh.bus.sockets import BusConfig
from tickmesh.bus.sequence import Notice, PublisherSilent, PublisherStopped
from tickmesh.bus.subscriber import AsyncSubscriber, Gap
from tickmesh.bus.topics import Pattern, TopicError
from tickmesh.runtime import process
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.check import renamed
from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import subscriber_counts
from tickmesh.runtime.settings import SettingsError, Strings, read
from tickmesh.runtime.spec import ChildSpec

Hook = Callable[..., Any]
LOG_FIRST_ERRORS = 5  # then one error log line in LOG_ERRORS_EVERY
LOG_ERRORS_EVERY = 1000


class ConsumerError(ValueError):
    """A target that does not name a consumer."""


@dataclass(frozen=True)
class Consumer:
    """What runs: the patterns to subscribe to, and the hooks (each may be async)."""

    patterns: tuple[str, ...]
    on_event: Hook
    on_gap: Hook | None = None
    on_start: Hook | None = None
    on_stop: Hook | None = None
    on_publisher: Hook | None = None


def consumer(*patterns: str) -> Callable[[Hook], Consumer]:
    """Decorate `def handler(event)` into a Consumer of these patterns."""
    def wrap(handler: Hook) -> Consumer:
        return Consumer(tuple(patterns), handler)
    return wrap


def resolve(target: str) -> Consumer:
    """The Consumer that "module:attr" names: a Consumer, a class or an instance with
    `on_event`, or a bare function (its patterns must then come from the settings)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConsumerError(f"{target!r} is not module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and f"{module_name}.".startswith(f"{exc.name}."):
            raise ConsumerError(f"no module named {module_name!r}{renamed(module_name)}") \
                from None
        raise ConsumerError(f"{module_name} cannot be imported: {exc}") from None
    found = getattr(module, attr, None)
    if found is None:
        raise ConsumerError(f"{module_name} has no attribute {attr!r}")
    return as_consumer(found, target)


def as_consumer(found: Any, target: str = "the target") -> Consumer:
    if isinstance(found, Consumer):
        return found
    if inspect.isclass(found):
        found = found()
    if callable(getattr(found, "on_event", None)):
        return Consumer(tuple(getattr(found, "patterns", ())), found.on_event,
                        getattr(found, "on_gap", None), getattr(found, "on_start", None),
                        getattr(found, "on_stop", None), getattr(found, "on_publisher", None))
    if callable(found):
        return Consumer((), found)
    raise ConsumerError(f"{target} is not a consumer (a function, or a class with on_event)")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A consumer's settings table: what to run, and patterns to use instead of its own."""

    target: str
    patterns: Strings = ()

    def __post_init__(self) -> None:
        try:
            own = resolve(self.target).patterns
        except ConsumerError as exc:
            raise SettingsError(f"settings.target: {exc}") from None
        for key, patterns in (("patterns", self.patterns), ("target", own)):
            try:
                [Pattern.parse(pattern) for pattern in patterns]
            except TopicError as exc:
                raise SettingsError(f"settings.{key}: {exc}") from None
        if not (self.patterns or own):
            raise SettingsError(f"settings.patterns: required ({self.target} has no patterns "
                                "of its own)")


async def work(ctx: process.ProcessContext[Settings]) -> None:
    """Subscribe, then hand every event (and gap) to the consumer until cancelled."""
    found = resolve(ctx.settings.target)
    patterns = ctx.settings.patterns or found.patterns
    notices: list[Notice] = []  # told by the subscriber before the batch they precede
    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, patterns,
                          rcvhwm=ctx.spec.bus.receive_hwm,
                          on_gap=notices.append, on_publisher=notices.append)
    ctx.metrics.collect(lambda: subscriber_counts(sub))
    if found.on_start is not None:
        await _call(found.on_start, ctx)
    log().info("consuming", target=ctx.settings.target, patterns=list(patterns))
    try:
        await _consume(sub, found, notices, ctx)
    finally:
        sub.close()
        if found.on_stop is not None:
            await _call(found.on_stop)


async def _consume(sub: AsyncSubscriber, found: Consumer, notices: list[Notice],
                   ctx: process.ProcessContext) -> None:
    """Events in batches (one wake-up for what has arrived); a batch ends before a notice, and
    the subscriber tells it as the next batch is read: it is handed on before that batch."""
    counts = ctx.counts
    async for batch in sub.batches():  # the heartbeat runs between batches
        for notice in notices:
            await (_gap if isinstance(notice, Gap) else _publisher)(notice, found, ctx)
        notices.clear()
        for event in batch:
            counts["events_received"] += 1
            await _guarded("on_event", found.on_event, event, ctx)


async def _gap(gap: Gap, found: Consumer, ctx: process.ProcessContext) -> None:
    ctx.counts["bus_messages_missed"] += gap.missed
    # logged sparingly (1st, 2nd, 4th... gap): a storm of gaps must not flood the log
    count_bad_input(ctx.counts, "bus_gaps", log(), "bus gap",
                    topic=gap.topic.decode(errors="replace"), missed=gap.missed)
    if found.on_gap is not None:
        await _guarded("on_gap", found.on_gap, gap, ctx)


async def _publisher(gone: PublisherSilent | PublisherStopped, found: Consumer,
                     ctx: process.ProcessContext) -> None:
    how = "stopped" if isinstance(gone, PublisherStopped) else "silent"
    ctx.counts["publishers_gone", how] += 1
    log().warning(f"publisher {how}", publisher=gone.name, epoch=gone.epoch)
    if found.on_publisher is not None:
        await _guarded("on_publisher", found.on_publisher, gone, ctx)


async def _guarded(hook: str, handler: Hook, arg: Any, ctx: process.ProcessContext) -> None:
    """Call a hook; an exception is counted and logged (rate-limited), and the arg skipped."""
    try:
        await _call(handler, arg)
    except Exception:
        ctx.counts["consumer_errors", hook] += 1
        errors = ctx.counts["consumer_errors", hook]
        if errors <= LOG_FIRST_ERRORS or errors % LOG_ERRORS_EVERY == 0:
            log().error("consumer hook raised", hook=hook, errors=errors, exc_info=True)


async def _call(handler: Hook, *args: Any) -> None:
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


# --- tickmesh consume ----------------------------------------------------------------------

def default_name(target: str) -> str:
    """The process name (heartbeat topics, log lines) of `target` run by hand: "consume-" and
    its attribute, cleaned (the prefix keeps it off a supervised child's topics: two
    publishers on one topic would look like gaps and restarts to every subscriber)."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", target.rpartition(":")[2].lower()).strip("-")
    return f"consume-{cleaned or 'consumer'}"


def cli(argv: list[str]) -> None:
    """`tickmesh consume`: run one consumer in this process, on the bus `--bus` describes."""
    parser = argparse.ArgumentParser(prog="tickmesh consume", description=cli.__doc__)
    parser.add_argument("target", help="module:attribute, importable from here")
    parser.add_argument("--pattern", action="append", default=[], metavar="PATTERN",
                        help="kind[.provider[.SYMBOL]] instead of the consumer's own (repeatable)")
    parser.add_argument("--name", help="the process name (default: consume-ATTRIBUTE)")
    parser.add_argument("--bus", required=True, help="the [bus] table, as JSON")
    args = parser.parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the user's own modules, here
    raw = {"target": args.target, "patterns": args.pattern}
    try:
        read(Settings, raw)
    except SettingsError as exc:
        parser.error(str(exc))
    name = args.name or default_name(args.target)
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        parser.error(f"--name: {name!r} must match [a-z0-9_-]+ (it names bus topics)")
    spec = ChildSpec(name, raw, BusConfig.from_dict(json.loads(args.bus)))
    process.run(work, Settings, spec=spec)


def main() -> None:
    process.run(work, Settings)


if __name__ == "__main__":
    main()
