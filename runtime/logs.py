"""Logging for every tickmesh process: structlog to stderr, JSON lines in production and pretty
on a terminal, with the process name in every line and every known secret masked.

The standard library's loggers (websockets, ib_async, asyncio, aiohttp...) go through the same
processors: their records come out as our lines, with the process, the logger's name in
`logger`, the bound context (e.g. a handler's `provider`) and the secrets masked. Libraries log
from LIBRARY_LEVELS up only: websockets' per-frame DEBUG lines and per-request INFO lines
never appear.

Each record is written whole, its newline included, with one write() (under a lock, whatever
the thread), so that no reader ever sees two records run together. The supervisor hands its
own lines to its output relay instead (`sink`, supervisor.output), always as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any, Callable

import structlog

from tickmesh.runtime.secrets import may_hold_secret, redact

Sink = Callable[[str], None]
"""Takes one rendered record, without its newline."""
LIBRARY_LEVELS = {"websockets": logging.WARNING, "asyncio": logging.WARNING,
                  "aiohttp": logging.WARNING, "ib_async": logging.WARNING}


def configure_logging(process_name: str, level: int = logging.INFO,
                      sink: Sink | None = None) -> None:
    """Log as `process_name` from `level` up: to stderr (pretty on a terminal), or as JSON
    lines to `sink`."""
    pretty = sink is None and sys.stderr.isatty()
    write = sink or _FdSink(sys.stderr.fileno())
    renderer: Any = (structlog.dev.ConsoleRenderer() if pretty
                     else structlog.processors.JSONRenderer())
    shared = _processors(process_name)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _LineLogger(write),
        cache_logger_on_first_use=True,
    )
    _route_standard_library(shared, renderer, write, level)


def log() -> Any:
    return structlog.get_logger()


def write_whole(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`: one write(), unless the kernel takes only part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class PrettyLines:
    """Shows another process's JSON log lines in the console format; other lines unchanged."""

    def __init__(self) -> None:
        self._render = structlog.dev.ConsoleRenderer()

    def __call__(self, line: bytes) -> bytes:
        try:
            record = json.loads(line)
        except ValueError:
            return line
        if not isinstance(record, dict) or not {"event", "level"} <= record.keys():
            return line
        return self._render(None, str(record["level"]), record).encode()


# --- the pipeline ------------------------------------------------------------------------------

def _processors(process_name: str) -> list[Any]:
    """What every record goes through before it is rendered, ours and the libraries' alike."""

    def add_process(_logger: Any, _method: str, event_dict: dict) -> dict:
        return {"process": process_name, **event_dict}  # also in threads: not a contextvar

    return [
        structlog.contextvars.merge_contextvars,
        add_process,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_secrets,
    ]


def _redact_secrets(_logger: Any, _method: str, event_dict: dict) -> dict:
    """Every text value with the known secrets masked: a line none of whose values may hold one
    (one look at all of them, joined) is passed on at once."""
    texts = [value for value in event_dict.values() if isinstance(value, str)]
    if may_hold_secret("\n".join(texts)):
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = redact(value)
    return event_dict


def _route_standard_library(shared: list[Any], renderer: Any, write: Sink, level: int) -> None:
    """The root logger's only handler renders every library's records as ours."""
    handler = _Handler(write)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    logging.basicConfig(handlers=[handler], level=level, force=True)
    for name, library_level in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(level, library_level))
    logging.captureWarnings(True)  # Python's warnings too, as lines of ours


class _LineLogger:
    """structlog's logger: hands each rendered record to the sink."""

    def __init__(self, write: Sink) -> None:
        self._write = write

    def msg(self, message: str) -> None:
        self._write(message)

    debug = info = warning = error = critical = msg


class _Handler(logging.Handler):
    """The standard library's records, formatted by structlog, to the same sink."""

    def __init__(self, write: Sink) -> None:
        super().__init__()
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own convention
            self.handleError(record)


class _FdSink:
    """Each record and its newline with one write() to `fd`, one thread at a time."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        data = (line + "\n").encode(errors="backslashreplace")
        with self._lock:
            try:
                write_whole(self._fd, data)
            except BrokenPipeError:
                pass  # nobody reads our stderr any more: the process goes on
