"""The Kraken handler: a supervised child (`python -m tickmesh.handlers.kraken.handler`) that
streams checksum-verified L2 books, trades and spreads (L1) from Kraken's public WebSocket API
v1 onto the bus.

The connection life (reconnect with jittered backoff, stale detection, Status events, a fresh
subscribe on every connection, single-pair resubscribes with their capped per-symbol backoff
after a checksum mismatch, control requests) is handlers.common's ReconnectingClient; the
Kraken part is handlers.kraken.protocol.KrakenProtocol.

Settings (`KrakenSettings`): url (default wss://ws.kraken.com), symbols (normalized BASE-QUOTE:
["BTC-USD", "ETH-USD"], subscribed as Kraken's XBT/USD, ETH/USD: handlers.kraken.wire's table),
depth (of the book: 10, 25, 100, 500 or 1000; 1000 by default), channels (any of book, trade,
spread; all by default), app_ping_interval (seconds between Kraken's application pings, 30; 0:
none), and the client's stale_after (here 10 s: Kraken sends a heartbeat every second when
quiet), backoff_min, backoff_max, ping_interval, ping_timeout, open_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.handlers.common import symbols
from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.handlers.kraken import wire
from tickmesh.handlers.kraken.protocol import PING_INTERVAL, KrakenProtocol
from tickmesh.runtime import process
from tickmesh.runtime.settings import Strings, require

DEFAULT_URL = "wss://ws.kraken.com"
DEFAULT_STALE_AFTER = 10.0
"""Seconds without a frame before the connection is called stale (heartbeats: every second)."""


@dataclass(frozen=True, kw_only=True)
class KrakenSettings(ClientSettings):
    """The handler's settings table: the client's keys, and Kraken's."""

    url: str = DEFAULT_URL
    stale_after: float = DEFAULT_STALE_AFTER
    symbols: Strings
    depth: int = 1000
    channels: Strings = wire.CHANNELS
    app_ping_interval: float = PING_INTERVAL

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list of BASE-QUOTE symbols",
                self.symbols)
        symbols.check_settings(self.symbols)
        require(len(set(self.symbols)) == len(self.symbols), "symbols", "no symbol twice",
                self.symbols)
        require(self.depth in wire.DEPTHS, "depth", " or ".join(map(str, wire.DEPTHS)),
                self.depth)
        require(bool(self.channels) and set(self.channels) <= set(wire.CHANNELS), "channels",
                f"a non-empty list of {', '.join(wire.CHANNELS)}", self.channels)
        require(self.app_ping_interval >= 0, "app_ping_interval", "a number of seconds >= 0",
                self.app_ping_interval)


Settings = KrakenSettings


async def _main(ctx: process.ProcessContext[KrakenSettings]) -> None:
    settings = ctx.settings
    protocol = KrakenProtocol(list(settings.symbols), settings.depth, tuple(settings.channels),
                              counters=ctx.counts, ping_interval=settings.app_ping_interval)
    await ReconnectingClient(ctx, protocol, settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
