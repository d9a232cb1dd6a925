"""Topic strings: built so ZeroMQ's prefix filtering can select kind, provider and exact symbol.

A topic is `kind.source.SYMBOL|`. `kind` and `source` never contain a dot; the symbol may
(BRK.B) but never contains `|`, which terminates it: `trade.alpaca.AAPL|` is not a prefix of
`trade.alpaca.AAPLX|`. Patterns such as `*.*.AAPL` are matched here, in the client, for the
parts a prefix cannot express.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

TERMINATOR = "|"
_NAME = re.compile(r"^[a-z0-9_-]+$")


class TopicError(ValueError):
    """A kind, source, symbol or pattern that cannot form a valid topic."""


def topic(kind: str, source: str, symbol: str = "") -> bytes:
    """The wire topic for one event stream."""
    if not _NAME.match(kind) or not _NAME.match(source):
        raise TopicError(f"kind and source must match [a-z0-9_-]+: {kind!r}, {source!r}")
    if TERMINATOR in symbol:
        raise TopicError(f"symbol must not contain {TERMINATOR!r}: {symbol!r}")
    return f"{kind}.{source}.{symbol}{TERMINATOR}".encode()


def split(topic_bytes: bytes) -> tuple[str, str, str]:
    """(kind, source, symbol) of a wire topic."""
    text = topic_bytes.decode()
    if not text.endswith(TERMINATOR):
        raise TopicError(f"topic does not end with {TERMINATOR!r}: {text!r}")
    kind, source, symbol = text[:-1].split(".", 2)
    return kind, source, symbol


@dataclass(frozen=True)
class Pattern:
    """A subscription pattern: `kind[.source[.SYMBOL]]`, each part a literal or `*`.

    `prefix` is what to subscribe to in ZeroMQ; `matches` finishes the filtering in the client
    when a `*` stands before a literal part (e.g. `*.*.AAPL`).
    """

    kind: str
    source: str
    symbol: str | None  # None: any symbol (pattern had no third part, or it was `*`)

    @classmethod
    def parse(cls, text: str) -> "Pattern":
        """An empty part is an error, not "any": `trade.alpaca.` (a raw ZeroMQ prefix) would
        otherwise silently match nothing. Write `trade.alpaca` or `trade.alpaca.*`."""
        if not text or TERMINATOR in text:
            raise TopicError(f"bad pattern {text!r}")
        parts = text.split(".", 2)
        if "" in parts:
            raise TopicError(f"bad pattern {text!r}: an empty part (write * for any)")
        parts += ["*"] * (3 - len(parts))
        kind, source, symbol = parts
        for part in (kind, source):
            if part != "*" and not _NAME.match(part):
                raise TopicError(f"bad pattern {text!r}: {part!r} is not a kind or source name")
        return cls(kind, source, None if symbol == "*" else symbol)

    @property
    def prefix(self) -> bytes:
        if self.kind == "*":
            return b""
        if self.source == "*":
            return f"{self.kind}.".encode()
        if self.symbol is None:
            return f"{self.kind}.{self.source}.".encode()
        return topic(self.kind, self.source, self.symbol)

    @property
    def needs_client_filter(self) -> bool:
        return (self.kind == "*" and (self.source != "*" or self.symbol is not None)) or (
            self.source == "*" and self.symbol is not None
        )

    def matches(self, topic_bytes: bytes) -> bool:
        kind, source, symbol = split(topic_bytes)
        return (
            self.kind in ("*", kind)
            and self.source in ("*", source)
            and self.symbol in (None, symbol)
        )


class Selection:
    """What a subscriber's patterns select: the prefixes to subscribe to in ZeroMQ, and the
    filtering a prefix cannot express, finished in the client (`filters`, `wants`)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [Pattern.parse(p) for p in patterns]
        self._client = [p for p in self.patterns if p.needs_client_filter]
        self._all_by_prefix = len(self._client) < len(self.patterns)
        self.filters = bool(self._client)
        """Whether `wants` must be asked: some pattern needs the client's filtering."""

    @property
    def prefixes(self) -> set[bytes]:
        return {p.prefix for p in self.patterns}

    def wants(self, topic_bytes: bytes) -> bool:
        """Whether a message that arrived (so matched some prefix) is selected."""
        try:
            if any(p.matches(topic_bytes) for p in self._client):
                return True
            return self._all_by_prefix and any(
                not p.needs_client_filter and topic_bytes.startswith(p.prefix)
                for p in self.patterns)
        except (ValueError, UnicodeDecodeError):
            return False

    def selects(self, topic_bytes: bytes) -> bool:
        """Whether a message of `topic_bytes` is selected, whatever else was subscribed to
        (heartbeats, which a subscriber takes for its own use): its prefix, then `wants`."""
        return any(topic_bytes.startswith(prefix) for prefix in self.prefixes) and (
            not self.filters or self.wants(topic_bytes))
