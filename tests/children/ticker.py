"""A well-behaved child: publishes a Trade for settings["symbol"] (default TICK) every 5 ms."""

import asyncio
import time
from dataclasses import dataclass

from tickmesh.bus import Trade
from tickmesh.runtime.process import ProcessContext, run

INTERVAL = 0.005


@dataclass(frozen=True)
class Settings:
    symbol: str = "TICK"


async def tick(ctx: ProcessContext[Settings]) -> None:
    symbol = ctx.settings.symbol
    while True:
        now = time.time_ns()
        ctx.publisher.publish(
            Trade(provider=ctx.name, symbol=symbol, ts_event=now, ts_recv=now, price=1.0, size=1.0)
        )
        await asyncio.sleep(INTERVAL)


def main() -> None:
    run(tick, Settings)


if __name__ == "__main__":
    main()
