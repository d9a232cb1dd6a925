"""The Polygon stocks handler: a supervised child (`python -m handlers.polygon.handler`) that
streams trades, quotes and aggregates from Polygon's WebSocket onto the bus.

The connection life (reconnect with jittered backoff, stale detection, Status events, a fresh
auth and subscribe on every connection) is handlers.common's ReconnectingClient; the Polygon
part is handlers.polygon.protocol.PolygonProtocol.

Settings: url (default wss://socket.polygon.io/stocks), symbols (e.g. ["AAPL", "MSFT"], or
["*"] for all), channels (any of T, Q, A, AM; default ["T", "Q", "AM"]), key_env (the
environment variable holding the API key, default POLYGON_API_KEY; unset, a demo placeholder is
sent that only a simulator accepts), and the client's stale_after, backoff_min, backoff_max,
ping_interval, ping_timeout, open_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bus import process
from handlers.common import ClientSettings, ReconnectingClient
from handlers.polygon import protocol as wire

DEFAULT_URL = "wss://socket.polygon.io/stocks"
DEFAULT_CHANNELS = ("T", "Q", "AM")
DEFAULT_KEY_ENV = "POLYGON_API_KEY"
DEMO_KEY = "tickmesh-demo-key"
DEFAULT_STALE_AFTER = 60.0
"""Seconds without a frame before the connection is called stale. Polygon sends nothing when
nothing trades (WebSocket pings still catch a dead peer), so keep it well above the quietest
symbol's gaps, or 0 to turn it off."""


@dataclass(frozen=True)
class PolygonSettings:
    topics: list[str]
    key_env: str
    client: ClientSettings

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "PolygonSettings":
        """Read and check the settings table; a ValueError names the key that is wrong."""
        symbols = _strings(settings, "symbols", None)
        channels = _strings(settings, "channels", DEFAULT_CHANNELS)
        topics = wire.topics_for(channels, symbols)
        for topic in topics:
            try:
                wire.split_topic(topic)
            except wire.Malformed as exc:
                raise ValueError(f"settings symbols/channels: {exc.reason}") from None
        key_env = settings.get("key_env", DEFAULT_KEY_ENV)
        if not isinstance(key_env, str) or not key_env:
            raise ValueError(f"setting key_env must name an environment variable, got {key_env!r}")
        client = ClientSettings.from_settings(
            {"stale_after": DEFAULT_STALE_AFTER, **settings}, default_url=DEFAULT_URL
        )
        return cls(topics, key_env, client)


def _strings(settings: dict[str, Any], name: str, default: Any) -> list[str]:
    value = settings.get(name, default)
    if not value or not isinstance(value, (list, tuple)) or not all(
        isinstance(item, str) and item for item in value
    ):
        raise ValueError(f"setting {name} must be a non-empty list of strings, got {value!r}")
    return list(value)


async def _main(ctx: process.ProcessContext) -> None:
    settings = PolygonSettings.from_settings(ctx.settings)
    key = process.secret_from_env(settings.key_env)
    if not key:
        process.log().warning("API key not set: sending the demo placeholder, which only a "
                              "simulator accepts", key_env=settings.key_env)
        key = DEMO_KEY
    protocol = wire.PolygonProtocol(key, settings.topics, counters=ctx.counters)
    await ReconnectingClient(ctx, protocol, settings.client).run()


def main() -> None:
    process.run(_main)


if __name__ == "__main__":
    main()
