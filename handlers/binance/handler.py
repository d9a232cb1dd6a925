"""The Binance spot handler: a supervised child (`python -m tickmesh.handlers.binance.handler`) that
streams trades, top-of-book quotes and in-sync L2 books from Binance's market streams onto the
bus.

The connection life (reconnect with jittered backoff, stale detection, Status events, HTTP
for the REST snapshots, per-symbol resync backoff) is handlers.common's ReconnectingClient;
the Binance part is handlers.binance.protocol.BinanceProtocol.

Settings (`BinanceSettings`): url (default wss://stream.binance.com:9443/stream, a
combined-stream connection that SUBSCRIBEs), rest_url (default https://api.binance.com),
symbols (normalized, e.g. ["BTC-USDT", "ETH-BTC"]), channels (any of depth, trade,
bookTicker; default all), depth_limit (levels of each REST snapshot, 1..5000, default 1000),
rest_weight_per_minute (the REST weight budget for snapshots, default Binance's 6000; what
Binance's X-MBX-USED-WEIGHT-1M says the IP used counts against it too, and past 80% of it
requests slow to its even pace), snapshots_in_flight (default 4), streams_per_subscribe
(default 200) and subscribe_interval (seconds between SUBSCRIBE messages, at least 0.2:
Binance takes 5 messages a second), and the client's stale_after (here 60 s), backoff_min,
backoff_max, ping_interval, ping_timeout, open_timeout. Binance pings every 20 s; websockets
answers its pings whatever our own ping settings are. A 429 or a 418 (IP ban) from the REST
API holds every REST request of the handler until its Retry-After has passed, reconnects
included (handlers.binance.pacing), with a Status "error" that says until when.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.handlers.binance import wire
from tickmesh.handlers.binance.protocol import BinanceProtocol, Config
from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.handlers.common import symbols
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.settings import Strings, require

DEFAULT_URL = "wss://stream.binance.com:9443/stream"
DEFAULT_REST_URL = "https://api.binance.com"
MIN_SUBSCRIBE_INTERVAL = 1 / wire.MAX_MESSAGES_PER_SECOND


@dataclass(frozen=True, kw_only=True)
class BinanceSettings(ClientSettings):
    """The handler's settings table: the client's keys, and Binance's."""

    url: str = DEFAULT_URL
    stale_after: float = 60.0
    rest_url: str = DEFAULT_REST_URL
    symbols: Strings
    channels: Strings = tuple(wire.CHANNELS)
    depth_limit: int = 1000
    rest_weight_per_minute: int = wire.WEIGHT_PER_MINUTE
    snapshots_in_flight: int = 4
    streams_per_subscribe: int = 200
    subscribe_interval: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.rest_url.startswith(("http://", "https://")), "rest_url",
                "an http:// or https:// address", self.rest_url)
        require(bool(self.symbols), "symbols", "a non-empty list of symbols", self.symbols)
        symbols.check_settings(self.symbols)
        require(bool(self.channels) and set(self.channels) <= set(wire.CHANNELS), "channels",
                f"a non-empty list of {sorted(wire.CHANNELS)}", self.channels)
        require(len(self.symbols) * len(self.channels) <= wire.MAX_STREAMS, "symbols",
                f"at most {wire.MAX_STREAMS} streams (symbols x channels) on a connection",
                len(self.symbols) * len(self.channels))
        require(1 <= self.depth_limit <= wire.MAX_DEPTH_LIMIT, "depth_limit",
                f"an integer from 1 to {wire.MAX_DEPTH_LIMIT}", self.depth_limit)
        require(self.rest_weight_per_minute >= wire.depth_weight(self.depth_limit),
                "rest_weight_per_minute", "at least the weight of one snapshot request "
                f"({wire.depth_weight(self.depth_limit)})", self.rest_weight_per_minute)
        require(self.snapshots_in_flight >= 1, "snapshots_in_flight", "an integer >= 1",
                self.snapshots_in_flight)
        require(1 <= self.streams_per_subscribe <= wire.MAX_STREAMS, "streams_per_subscribe",
                f"an integer from 1 to {wire.MAX_STREAMS}", self.streams_per_subscribe)
        require(self.subscribe_interval >= MIN_SUBSCRIBE_INTERVAL, "subscribe_interval",
                f"a number >= {MIN_SUBSCRIBE_INTERVAL}", self.subscribe_interval)

    def protocol_config(self) -> Config:
        return Config(symbols=self.symbols, channels=self.channels, rest_url=self.rest_url,
                      depth_limit=self.depth_limit,
                      weight_per_minute=self.rest_weight_per_minute,
                      snapshots_in_flight=self.snapshots_in_flight,
                      streams_per_subscribe=self.streams_per_subscribe,
                      subscribe_interval=self.subscribe_interval)


Settings = BinanceSettings


async def _main(ctx: process.ProcessContext[BinanceSettings]) -> None:
    config = ctx.settings.protocol_config()
    log().info("binance handler", symbols=len(config.symbols), streams=len(config.streams()),
               rest_url=config.rest_url, depth_limit=config.depth_limit)
    protocol = BinanceProtocol(config, counters=ctx.counts)
    await ReconnectingClient(ctx, protocol, ctx.settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
