"""A child that publishes a known number of events, then idles: settings["trades"] Trades
spread over settings["symbols"] and settings["quotes"] Quotes of the first symbol, provider
settings["provider"], one every 2 ms (so that a subscriber that joins late still sees the last
of each topic)."""

import asyncio
import itertools
import time
from dataclasses import dataclass

from tickmesh.bus import Quote, Trade
from tickmesh.runtime.process import ProcessContext, run
from tickmesh.runtime.settings import Strings

INTERVAL = 0.002


@dataclass(frozen=True)
class Settings:
    provider: str
    trades: int
    quotes: int
    symbols: Strings = ("AAA", "BBB", "CCC")


async def burst(ctx: ProcessContext[Settings]) -> None:
    s = ctx.settings
    symbols = itertools.cycle(s.symbols)
    for index in range(max(s.trades, s.quotes)):
        now = time.time_ns()
        if index < s.trades:
            ctx.publisher.publish(Trade(provider=s.provider, symbol=next(symbols), ts_event=now,
                                        ts_recv=now, price=1.0, size=1.0))
        if index < s.quotes:
            ctx.publisher.publish(Quote(provider=s.provider, symbol=s.symbols[0], ts_event=now,
                                        ts_recv=now, bid_price=1.0, bid_size=1.0, ask_price=1.1,
                                        ask_size=1.0))
        await asyncio.sleep(INTERVAL)
    await asyncio.Event().wait()


def main() -> None:
    run(burst, Settings)


if __name__ == "__main__":
    main()
