"""Logging for every tickmesh process: structlog to stderr, JSON lines in production and pretty
on a terminal, with the process name in every line and every known secret masked."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from runtime.secrets import redact


def _redact_secrets(_logger: Any, _method: str, event_dict: dict) -> dict:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(process_name: str, level: int = logging.INFO) -> None:
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
