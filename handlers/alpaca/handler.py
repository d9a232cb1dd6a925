"""The Alpaca handler: `python -m handlers.alpaca.handler`, a supervised child process.

Streams Alpaca market data v2 (handlers.alpaca.protocol) over handlers.common's reconnecting
client and publishes normalized trades and quotes on the bus as source "alpaca".

Settings: symbols (required; "*" for all), channels (["trades", "quotes"]), feed ("iex"; sets
the default url wss://stream.data.alpaca.markets/v2/{feed}), url, encoding ("msgpack" or
"json"), key_env / secret_env (names of the environment variables holding the API key and
secret; default APCA_API_KEY_ID / APCA_API_SECRET_KEY; if unset a placeholder key is sent,
which only a simulator accepts), and the client's: stale_after, backoff_min, backoff_max,
ping_interval, ping_timeout, open_timeout (handlers.common.client).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bus import process
from handlers.alpaca import wire
from handlers.alpaca.protocol import CHANNELS, AlpacaProtocol
from handlers.common.client import ClientSettings, ReconnectingClient

DEFAULT_HOST = "wss://stream.data.alpaca.markets"
PLACEHOLDER_KEY = "tickmesh-demo"
HANDLER_KEYS = {"symbols", "channels", "feed", "url", "encoding", "key_env", "secret_env"}
CLIENT_KEYS = {"stale_after", "backoff_min", "backoff_max", "ping_interval", "ping_timeout",
               "open_timeout"}


def build(settings: dict[str, Any], counters: Counter) -> tuple[AlpacaProtocol, ClientSettings]:
    """The protocol and client settings for a settings table; ValueError names what is wrong."""
    unknown = sorted(set(settings) - HANDLER_KEYS - CLIENT_KEYS)
    if unknown:
        raise ValueError(f"unknown alpaca handler settings: {', '.join(unknown)}")
    symbols = settings.get("symbols")
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise ValueError(f"setting symbols must be a non-empty list of strings, got {symbols!r}")
    protocol = AlpacaProtocol(
        key=_credential(settings.get("key_env", "APCA_API_KEY_ID")),
        secret=_credential(settings.get("secret_env", "APCA_API_SECRET_KEY")),
        symbols=symbols,
        channels=settings.get("channels", list(CHANNELS)),
        encoding=settings.get("encoding", wire.MSGPACK),
        counters=counters,
    )
    default_url = f"{DEFAULT_HOST}/v2/{settings.get('feed', 'iex')}"
    return protocol, ClientSettings.from_settings(settings, default_url)


def _credential(variable: str) -> str:
    value = process.secret_from_env(variable)
    if not value:
        process.log().warning("credential not set: sending a placeholder (a simulator accepts it)",
                              variable=variable)
    return value or PLACEHOLDER_KEY


async def _main(ctx: process.ProcessContext) -> None:
    protocol, settings = build(ctx.settings, ctx.counters)
    await ReconnectingClient(ctx, protocol, settings).run()


def main() -> None:
    process.run(_main)


if __name__ == "__main__":
    main()
