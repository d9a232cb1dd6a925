"""The bar builder: trades from the bus aggregated into OHLCV bars (with VWAP and the trade
count) per provider and symbol, at each configured interval, published as `bar` events.

    python -m tickmesh.consumers.bars          (supervised; settings below)

The rules (boundaries, late trades, empty intervals) are consumers.bars.aggregate's. Every
TICK_SECONDS the bars whose end + `grace` has passed by the wall clock are published, oldest
first, each with `te` its start and `tr` the time it closed.

Its bars are told apart from a provider's own (Polygon publishes `bar.polygon.AAPL|`) by
their provider: the trades' provider plus `suffix` ("-bars": `bar.polygon-bars.AAPL|`). Two
publishers on one topic would interleave their sequence numbers and epochs, and every
subscriber would see restarts where there are none and miss real gaps; with the suffix each
topic has one publisher. A second bar builder in the same system takes another suffix.

Metrics: bar_trades_late{provider,interval}, bars_open, and the consumers' events_received,
bus_gaps, bus_messages_missed.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from tickmesh.bus import events, topics
from tickmesh.bus.subscriber import AsyncSubscriber, Gap
from tickmesh.consumers.bars.aggregate import Aggregator
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.settings import CommaStrings, SettingsError, Strings, require

TICK_SECONDS = 0.05  # how often closed bars are looked for
_UNITS = {"s": 1, "m": 60, "h": 3600}
_INTERVAL = re.compile(r"^(\d+)([smh]?)$")


def interval_seconds(text: str) -> int:
    """"1s" -> 1, "5m" -> 300, "1h" -> 3600, "30" -> 30; ValueError if it is none of these."""
    match = _INTERVAL.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not an interval like 1s, 1m, 5m, 1h or 30")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The bar builder's settings table."""

    intervals: CommaStrings = ("1s", "1m", "5m")
    providers: Strings = ("*",)
    symbols: Strings = ("*",)
    grace: float = 0.25  # seconds after a bar's end before it closes (late trades: see above)
    suffix: str = "-bars"  # the bars' provider is the trades' provider + suffix

    def __post_init__(self) -> None:
        try:
            self.seconds
        except ValueError as exc:
            raise SettingsError(f"settings.intervals: {exc}") from None
        require(self.grace >= 0, "grace", "a number >= 0", self.grace)
        require(bool(re.fullmatch(r"[a-z0-9_-]+", self.suffix)), "suffix",
                "a non-empty [a-z0-9_-]+ (it names the bars' topics)", self.suffix)
        try:
            for pattern in patterns(self):
                topics.Pattern.parse(pattern)
        except topics.TopicError as exc:
            raise SettingsError(f"settings.providers/symbols: {exc}") from None

    @property
    def seconds(self) -> tuple[int, ...]:
        return tuple(sorted({interval_seconds(text) for text in self.intervals}))


def patterns(settings: Settings) -> list[str]:
    """The trades to aggregate: each provider's symbols."""
    return [f"trade.{provider}.{symbol}" for provider in settings.providers
            for symbol in settings.symbols]


async def work(ctx: process.ProcessContext[Settings]) -> None:
    settings = ctx.settings
    aggregator = Aggregator(settings.seconds, int(settings.grace * 1e9), settings.suffix)
    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, patterns(settings),
                          rcvhwm=ctx.spec.bus.receive_hwm,
                          on_gap=lambda gap: _count_gap(ctx, gap))
    closing = asyncio.create_task(_close_bars(aggregator, ctx), name="close-bars")
    log().info("building bars", intervals=list(settings.seconds), patterns=patterns(settings))
    try:
        await _read(sub, aggregator, ctx)
    finally:
        closing.cancel()
        sub.close()


async def _read(sub: AsyncSubscriber, aggregator: Aggregator, ctx: process.ProcessContext) -> None:
    counts = ctx.counts
    async for batch in sub.batches():  # the closing timer runs between batches
        counts["events_received"] += len(batch)
        for trade in batch:
            if isinstance(trade, events.Trade):
                for interval_s in aggregator.add(trade, time.time_ns()):
                    counts["bar_trades_late", trade.provider, interval_s] += 1


async def _close_bars(aggregator: Aggregator, ctx: process.ProcessContext) -> None:
    while True:
        for bar in aggregator.close(time.time_ns()):
            ctx.publisher.publish(bar)
        ctx.counts["bars_open"] = aggregator.open_bars
        await asyncio.sleep(TICK_SECONDS)


def _count_gap(ctx: process.ProcessContext, gap: Gap) -> None:
    ctx.counts["bus_gaps"] += 1
    ctx.counts["bus_messages_missed"] += gap.missed


def main() -> None:
    process.run(work, Settings)


if __name__ == "__main__":
    main()
