"""Consumers for tests/test_consumer_sdk.py, in both of the SDK's shapes: each logs what it
gets ("got"), and raises on the symbol BOOM (a handler bug the SDK must survive)."""

from __future__ import annotations

import asyncio

from tickmesh.bus.events import Trade
from tickmesh.bus.subscriber import Gap
from tickmesh.runtime.consumer import consumer
from tickmesh.runtime.logs import log
from tickmesh.runtime.process import ProcessContext


@consumer("trade.sdk")
def echo(trade: Trade) -> None:
    if trade.symbol == "BOOM":
        raise RuntimeError("a bug in the handler")
    log().info("got", symbol=trade.symbol, price=trade.price)


def bare(trade: Trade) -> None:
    """A bare function: its patterns come from the settings or --pattern."""
    log().info("got", symbol=trade.symbol, price=trade.price)


class Counter:
    patterns = ("trade.sdk",)

    def __init__(self) -> None:
        self.seen = 0
        self.ctx: ProcessContext | None = None

    def on_start(self, ctx: ProcessContext) -> None:
        self.ctx = ctx
        log().info("started", name=ctx.name)

    async def on_event(self, trade: Trade) -> None:
        if trade.symbol == "BOOM":
            raise RuntimeError("a bug in the handler")
        self.seen += 1
        await asyncio.sleep(0)
        log().info("got", symbol=trade.symbol, seen=self.seen)

    def on_gap(self, gap: Gap) -> None:
        log().info("gap seen", missed=gap.missed)

    async def on_stop(self) -> None:
        await asyncio.sleep(0)
        log().info("stopped cleanly", seen=self.seen)


class Ordered:
    """Logs each event's sequence number and each gap, in the order the SDK hands them over."""

    patterns = ("trade.order.X",)

    def on_event(self, trade: Trade) -> None:
        log().info("in order", seq=trade.seq)

    def on_gap(self, gap: Gap) -> None:
        log().info("in order", gap=[gap.expected, gap.received])

    def on_publisher(self, gone) -> None:
        log().info("in order", gone=[type(gone).__name__, gone.name])
