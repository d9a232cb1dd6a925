"""The Alpaca handler: `python -m tickmesh.handlers.alpaca.handler`, a supervised child process.

Streams Alpaca market data v2 (handlers.alpaca.protocol) over handlers.common's reconnecting
client and publishes normalized trades and quotes on the bus as source "alpaca".

Settings (`AlpacaSettings`): symbols (required; "*" for all), channels (["trades", "quotes"]),
feed ("iex"; sets the default url wss://stream.data.alpaca.markets/v2/{feed}), url, encoding
("msgpack" or "json"), key_env / secret_env (names of the environment variables holding the
API key and secret; default APCA_API_KEY_ID / APCA_API_SECRET_KEY; if unset a placeholder key
is sent, which only a simulator accepts), and the client's: stale_after, backoff_min,
backoff_max, ping_interval, ping_timeout, open_timeout (handlers.common.client).
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.protocol import CHANNELS, AlpacaProtocol
from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.runtime import process
from tickmesh.runtime.settings import Strings, require

DEFAULT_HOST = "wss://stream.data.alpaca.markets"


@dataclass(frozen=True, kw_only=True)
class AlpacaSettings(ClientSettings):
    """The handler's settings table: the client's keys, and Alpaca's."""

    symbols: Strings
    channels: Strings = CHANNELS
    feed: str = "iex"
    url: str = ""
    encoding: str = wire.MSGPACK
    key_env: str = "APCA_API_KEY_ID"
    secret_env: str = "APCA_API_SECRET_KEY"

    def __post_init__(self) -> None:
        if not self.url:
            object.__setattr__(self, "url", f"{DEFAULT_HOST}/v2/{self.feed}")
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list of strings", self.symbols)
        require(bool(self.channels) and set(self.channels) <= set(CHANNELS), "channels",
                f"some of {', '.join(CHANNELS)}", self.channels)
        require(self.encoding in wire.ENCODINGS, "encoding",
                f"one of {', '.join(wire.ENCODINGS)}", self.encoding)


Settings = AlpacaSettings


async def _main(ctx: process.ProcessContext[AlpacaSettings]) -> None:
    settings = ctx.settings
    protocol = AlpacaProtocol(
        key=process.credential(settings.key_env), secret=process.credential(settings.secret_env),
        symbols=settings.symbols, channels=settings.channels, encoding=settings.encoding,
        counters=ctx.counts,
    )
    await ReconnectingClient(ctx, protocol, settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
