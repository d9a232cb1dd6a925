"""The Polygon stocks handler: a supervised child (`python -m handlers.polygon.handler`) that
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

from bus import process
from handlers.common import child
from handlers.common.client import ClientSettings, ReconnectingClient
from handlers.common.settings import Strings, SettingsError, require
from handlers.polygon import protocol as wire

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


async def _main(ctx: process.ProcessContext, settings: PolygonSettings) -> None:
    key = child.credential(settings.key_env)
    protocol = wire.PolygonProtocol(key, settings.topics, counters=ctx.counters)
    await ReconnectingClient(ctx, protocol, settings).run()


def main() -> None:
    child.run(_main, PolygonSettings)


if __name__ == "__main__":
    main()
