"""The Coinbase Exchange handler: a supervised child (`python -m tickmesh.handlers.coinbase.handler`)
that streams L2 books and trades from Coinbase's WebSocket feed onto the bus.

The connection life (reconnect with jittered backoff, stale detection, Status events, a fresh
subscribe on every connection, single-product resubscribes with their backoff, control
requests) is handlers.common's ReconnectingClient; the Coinbase part is
handlers.coinbase.protocol.CoinbaseProtocol.

Settings (`CoinbaseSettings`): url (default wss://ws-feed.exchange.coinbase.com), symbols
(normalized BASE-QUOTE, which is Coinbase's own spelling: ["BTC-USD", "ETH-USD"]), channel
(level2_batch, the default, needs no credentials; level2 is signed with the key, secret and
passphrase in the environment variables key_env, secret_env, passphrase_env: unset, a
placeholder is sent that only a simulator accepts), refused_retry and refused_retry_max (a
product the exchange refuses, unknown or delisted, is left out and retried alone
refused_retry seconds later, 300 by default, then twice as long after each refusal, at most
refused_retry_max, 3600 by default: see handlers.coinbase.protocol), and the client's
stale_after (here 10 s: heartbeats come every second per product), backoff_min, backoff_max,
ping_interval, ping_timeout, open_timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.handlers.coinbase import wire
from tickmesh.handlers.coinbase.protocol import (
    RETRY_REFUSED, RETRY_REFUSED_MAX, CoinbaseProtocol, Credentials,
)
from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.handlers.common import symbols
from tickmesh.runtime import process
from tickmesh.runtime.settings import Strings, require

DEFAULT_URL = "wss://ws-feed.exchange.coinbase.com"
DEFAULT_STALE_AFTER = 10.0
"""Seconds without a frame before the connection is called stale (heartbeats: every second)."""


@dataclass(frozen=True, kw_only=True)
class CoinbaseSettings(ClientSettings):
    """The handler's settings table: the client's keys, and Coinbase's."""

    url: str = DEFAULT_URL
    stale_after: float = DEFAULT_STALE_AFTER
    symbols: Strings
    channel: str = wire.LEVEL2_BATCH
    key_env: str = "COINBASE_API_KEY"
    secret_env: str = "COINBASE_API_SECRET"
    passphrase_env: str = "COINBASE_API_PASSPHRASE"
    refused_retry: float = RETRY_REFUSED
    refused_retry_max: float = RETRY_REFUSED_MAX

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols), "symbols", "a non-empty list of BASE-QUOTE symbols",
                self.symbols)
        symbols.check_settings(self.symbols)
        require(len(set(self.symbols)) == len(self.symbols), "symbols", "no symbol twice",
                self.symbols)
        require(self.channel in wire.BOOK_CHANNELS, "channel",
                " or ".join(wire.BOOK_CHANNELS), self.channel)
        require(self.refused_retry > 0, "refused_retry", "a number of seconds > 0",
                self.refused_retry)
        require(self.refused_retry_max >= self.refused_retry, "refused_retry_max",
                f"a number >= refused_retry ({self.refused_retry:g})", self.refused_retry_max)


Settings = CoinbaseSettings


def credentials(settings: CoinbaseSettings) -> Credentials | None:
    """What a level2 subscribe is signed with (None for level2_batch, which needs none)."""
    if settings.channel != wire.LEVEL2:
        return None
    return Credentials(process.credential(settings.key_env),
                       process.credential(settings.secret_env),
                       process.credential(settings.passphrase_env))


async def _main(ctx: process.ProcessContext[CoinbaseSettings]) -> None:
    settings = ctx.settings
    protocol = CoinbaseProtocol(list(settings.symbols), settings.channel, credentials(settings),
                                counters=ctx.counts, refused_retry=settings.refused_retry,
                                refused_retry_max=settings.refused_retry_max)
    await ReconnectingClient(ctx, protocol, ctx.settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
