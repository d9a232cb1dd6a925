"""What `tickmesh tail` checks in its patterns before it waits: a kind that no event has is
refused (a typo such as `trades`, the Alpaca setting's spelling, would match nothing,
silently); a provider or symbol the system does not publish, by its config (its handler
children, tickmesh.handlers.PROVIDER.handler, and their `symbols` settings), and a symbol in
lower case (symbols are upper case: `aapl` is not `AAPL`) are warned about.
"""

from __future__ import annotations

import typing
from typing import Iterable, Sequence

from tickmesh.bus import events
from tickmesh.bus.topics import Pattern, TopicError

KINDS: tuple[str, ...] = tuple(cls.__struct_config__.tag for cls in typing.get_args(events.AnyEvent))
"""Every event kind, in tickmesh.bus.events's order."""

_HANDLER = ("tickmesh.handlers.", ".handler")
_BARS = "tickmesh.consumers.bars"
_BARS_SUFFIX = "-bars"  # bars publish as bar.<provider>-bars.SYMBOL


def check_pattern(text: str) -> Pattern:
    """The pattern `text`, parsed; TopicError if it is malformed or names no event's kind."""
    parsed = Pattern.parse(text)
    if parsed.kind != "*" and parsed.kind not in KINDS:
        raise TopicError(f"unknown kind {parsed.kind!r} in {text!r} (the kinds: "
                         f"{', '.join(KINDS)})")
    return parsed


def unpublished(patterns: Iterable[str], children: Sequence[typing.Any] | None) -> list[str]:
    """Warnings for `patterns` (checked already): their lower-case symbols, and, when the
    system's `children` (supervisor ChildConfigs; None: unknown) run handlers, the providers
    and symbols none of them publishes."""
    handlers = [c for c in children or () if _is_handler(c.run)]
    providers = {c.run[len(_HANDLER[0]):-len(_HANDLER[1])] for c in handlers}
    symbols = {s for c in handlers for s in _symbols(c.settings)}
    sources = providers | {c.name for c in children or ()}  # heartbeats and statuses: by child
    if any(c.run == _BARS for c in children or ()):
        sources |= {p + _BARS_SUFFIX for p in providers}
    warnings = []
    for text in patterns:
        pattern = Pattern.parse(text)
        if pattern.symbol is not None and pattern.symbol != pattern.symbol.upper():
            warnings.append(f"{text!r}: symbols are upper case ({pattern.symbol.upper()!r}, "
                            f"not {pattern.symbol!r}); waiting for {pattern.symbol!r} anyway")
        if providers and pattern.source != "*" and pattern.source not in sources:
            warnings.append(f"{text!r}: the running system publishes no provider "
                            f"{pattern.source!r} (its providers: {', '.join(sorted(providers))}); "
                            "waiting anyway")
        if symbols and pattern.symbol is not None and pattern.symbol not in symbols:
            warnings.append(f"{text!r}: the running system's handlers publish no symbol "
                            f"{pattern.symbol!r} (theirs: {', '.join(sorted(symbols))}); "
                            "waiting anyway")
    return warnings


def _is_handler(run: str) -> bool:
    return run.startswith(_HANDLER[0]) and run.endswith(_HANDLER[1]) and \
        run.count(".") == 3


def _symbols(settings: dict[str, typing.Any]) -> list[str]:
    symbols = settings.get("symbols", [])
    return [s for s in symbols if isinstance(s, str)] if isinstance(symbols, list) else []
