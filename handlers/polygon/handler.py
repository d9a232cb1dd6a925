"""The Polygon stocks handler: a supervised child (`python -m tickmesh.handlers.polygon.handler`) that
streams trades, quotes and aggregates from Polygon's WebSocket onto the bus.

The connection life (reconnect with jittered backoff, stale detection, Status events, a fresh
auth and subscribe on every connection) is handlers.common's ReconnectingClient; the Polygon
part is handlers.polygon.protocol.PolygonProtocol.

Settings (`PolygonSettings`): url (default wss://socket.polygon.io/stocks), symbols (e.g.
["AAPL", "MSFT"], or ["*"] for all), channels (any of T, Q, A, AM; default ["T", "Q", "AM"]),
key_env (the environment variable holding the API key, default POLYGON_API_KEY; unset, a
placeholder is sent that only a simulator accepts), and the client's stale_after (here 60 s),
backoff_min, backoff_max, ping_interval, ping_timeout, open_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.runtime import process
from tickmesh.runtime.settings import SettingsError, Strings, require
from tickmesh.handlers.polygon import wire
from tickmesh.handlers.polygon.protocol import PolygonProtocol

DEFAULT_URL = "wss://socket.polygon.io/stocks"
DEFAULT_CHANNELS = ("T", "Q", "AM")
DEFAULT_STALE_AFTER = 60.0
"""Seconds without a frame before the connection is called stale. Polygon sends nothing when
nothing trades (WebSocket pings still catch a dead peer), so keep it well above the quietest
symbol's gaps, or 0 to turn it off."""


@dataclass(frozen=True, kw_only=True)
class PolygonSettings(ClientSettings):
    """The handler's settings table: the client's keys, and Polygon's."""

    url: str = DEFAULT_URL
    stale_after: float = DEFAULT_STALE_AFTER
    symbols: Strings
    channels: Strings = DEFAULT_CHANNELS
    key_env: str = "POLYGON_API_KEY"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list of strings", self.symbols)
        require(bool(self.channels), "channels", "a non-empty list of strings", self.channels)
        for topic in self.topics:
            try:
                wire.split_topic(topic)
            except wire.Malformed as exc:
                raise SettingsError(f"settings.symbols/channels: {exc.reason}") from None
        require(bool(self.key_env), "key_env", "the name of an environment variable", self.key_env)

    @property
    def topics(self) -> list[str]:
        return wire.topics_for(self.channels, self.symbols)


Settings = PolygonSettings


async def _main(ctx: process.ProcessContext[PolygonSettings]) -> None:
    key = process.credential(ctx.settings.key_env)
    protocol = PolygonProtocol(key, ctx.settings.topics, counters=ctx.counts)
    await ReconnectingClient(ctx, protocol, ctx.settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
