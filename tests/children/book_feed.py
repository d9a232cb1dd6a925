"""A handler-like child: publishes one live book (a snapshot of settings["symbol"], then a delta
every 50 ms) under its process name as the provider, with the heartbeats every child sends."""

import asyncio
import time
from dataclasses import dataclass

from tickmesh.bus import BookDelta, BookSnapshot
from tickmesh.runtime.process import ProcessContext, run

INTERVAL = 0.05


@dataclass(frozen=True)
class Settings:
    symbol: str = "BOOK"


async def feed(ctx: ProcessContext[Settings]) -> None:
    now = time.time_ns()
    common = {"provider": ctx.name, "symbol": ctx.settings.symbol, "generation": 1}
    ctx.publisher.publish(BookSnapshot(ts_event=now, ts_recv=now, bids=[(99.0, 1.0)],
                                       asks=[(101.0, 1.0)], **common))
    size = 1.0
    while True:
        await asyncio.sleep(INTERVAL)
        size += 1.0
        now = time.time_ns()
        ctx.publisher.publish(BookDelta(ts_event=now, ts_recv=now, bids=[(99.0, size)], asks=[],
                                        **common))


def main() -> None:
    run(feed, Settings)


if __name__ == "__main__":
    main()
