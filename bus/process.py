"""What every tickmesh child process needs: its spec, logging, secrets, a lifeline to the
supervisor, a heartbeat, and a clean stop on SIGTERM/SIGINT.

A child module's `main()` usually is just `process.run(my_main)`, where
`async def my_main(ctx: ProcessContext)` does the work until cancelled.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import structlog
import uvloop

from bus.events import Heartbeat
from bus.publisher import Publisher

SPEC_ENV = "TICKMESH_CHILD"
PARENT_ENV = "TICKMESH_PARENT_PID"
PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 2.0

_secrets: set[str] = set()


@dataclass(frozen=True)
class BusEndpoints:
    publish: str
    subscribe: str


@dataclass(frozen=True)
class ChildSpec:
    name: str
    settings: dict[str, Any]
    bus: BusEndpoints

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "settings": self.settings,
             "bus": {"publish": self.bus.publish, "subscribe": self.bus.subscribe}}
        )

    @classmethod
    def from_json(cls, text: str) -> "ChildSpec":
        raw = json.loads(text)
        return cls(raw["name"], raw.get("settings", {}), BusEndpoints(**raw["bus"]))


def child_spec() -> ChildSpec:
    """The spec the supervisor handed this process (exits with code 2 if there is none)."""
    text = os.environ.get(SPEC_ENV)
    if not text:
        sys.exit(f"{SPEC_ENV} is not set: this module is started by `tickmesh run`")
    try:
        return ChildSpec.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        sys.exit(f"{SPEC_ENV} is not a valid child spec: {exc}")


# --- secrets and logging -------------------------------------------------------------------

def secret_from_env(variable: str, default: str = "") -> str:
    """Read a secret from the environment and make sure no log line ever shows it."""
    value = os.environ.get(variable, default)
    if value:
        _secrets.add(value)
    return value


def _redact_secrets(_logger: Any, _method: str, event_dict: dict) -> dict:
    if _secrets:
        for key, value in event_dict.items():
            if isinstance(value, str):
                for secret in _secrets:
                    if secret in value:
                        value = value.replace(secret, "***")
                event_dict[key] = value
    return event_dict


def configure_logging(process_name: str, level: int = logging.INFO) -> None:
    """structlog to stderr: JSON lines in production, pretty on a terminal."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process_name)


def log() -> Any:
    return structlog.get_logger()


# --- lifeline ------------------------------------------------------------------------------

def exit_with_parent() -> None:
    """Die with the supervisor: ask the kernel for SIGKILL when the parent dies, then make
    sure it has not died already (it may have, between our fork and this call)."""
    expected = os.environ.get(PARENT_ENV)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if expected and os.getppid() != int(expected):
        os._exit(1)


def prepare_endpoint(endpoint: str) -> None:
    """Create the directory of an ipc:// endpoint so that bind() can succeed."""
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)


# --- the child's main loop ----------------------------------------------------------------

@dataclass
class ProcessContext:
    """Handed to a child's main coroutine."""

    spec: ChildSpec
    publisher: Publisher
    counters: Counter = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def settings(self) -> dict[str, Any]:
        return self.spec.settings


async def _heartbeat(ctx: ProcessContext, interval: float = 1.0) -> None:
    pid = os.getpid()
    while True:
        now = time.time_ns()
        ctx.publisher.publish(
            Heartbeat(provider=ctx.name, ts_event=now, ts_recv=now, pid=pid,
                      counters=dict(ctx.counters))
        )
        ctx.publisher.discard_subscriptions()
        await asyncio.sleep(interval)


async def _supervise(main: Callable[[ProcessContext], Awaitable[None]], ctx: ProcessContext) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    work = asyncio.create_task(main(ctx), name="main")
    beat = asyncio.create_task(_heartbeat(ctx), name="heartbeat")
    stopper = asyncio.create_task(stop.wait(), name="stop")
    await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if work.done() and not work.cancelled() and work.exception() is not None:
        log().error("main crashed", exc_info=work.exception())
        code = 1
    for task in (work, beat, stopper):
        task.cancel()
    await asyncio.wait({work, beat, stopper}, timeout=STOP_GRACE_SECONDS)
    return code


def run(main: Callable[[ProcessContext], Awaitable[None]], spec: ChildSpec | None = None) -> None:
    """Run `main(ctx)` as this process's life: until it returns, crashes, or a signal stops it.
    Exits 0 on a clean stop or return, 1 if main raised."""
    spec = spec or child_spec()
    configure_logging(spec.name)
    exit_with_parent()
    publisher = Publisher(spec.bus.publish)
    ctx = ProcessContext(spec, publisher)
    log().info("process starting", pid=os.getpid())
    code = uvloop.run(_supervise(main, ctx))
    publisher.close()
    log().info("process stopped", code=code)
    sys.exit(code)
