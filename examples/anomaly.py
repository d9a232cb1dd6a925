"""A trade-anomaly flagger, as a class consumer: flags a trade whose price is more than
`threshold_pct` percent away from the last trade of the same provider and symbol.

    tickmesh consume tickmesh.examples.anomaly:Flagger [--pattern 'trade.*.AAPL']
    tickmesh consume tickmesh.examples.anomaly:sensitive           (an instance: 0.2 %)

Each flag is a warning log line "price jump". After a bus gap on a symbol's topic the last
price is forgotten: a move across lost trades is not a jump between two trades.
"""

from __future__ import annotations

from tickmesh.bus.events import Trade
from tickmesh.bus.subscriber import Gap
from tickmesh.bus.topics import split
from tickmesh.runtime.logs import log
from tickmesh.runtime.process import ProcessContext


class Flagger:
    patterns = ("trade",)

    def __init__(self, threshold_pct: float = 1.0) -> None:
        self.threshold_pct = threshold_pct
        self.last: dict[tuple[str, str], float] = {}
        self.flagged = 0

    def on_start(self, ctx: ProcessContext) -> None:
        log().info("flagging price jumps", threshold_pct=self.threshold_pct, process=ctx.name)

    def on_event(self, trade: Trade) -> None:
        key = (trade.provider, trade.symbol)
        last = self.last.get(key)
        self.last[key] = trade.price
        if last is None or last <= 0:
            return
        jump_pct = (trade.price - last) / last * 100
        if abs(jump_pct) > self.threshold_pct:
            self.flagged += 1
            log().warning("price jump", provider=trade.provider, symbol=trade.symbol,
                          last=last, price=trade.price, jump_pct=round(jump_pct, 4),
                          trade_id=trade.trade_id)

    def on_gap(self, gap: Gap) -> None:
        _kind, provider, symbol = split(gap.topic)
        self.last.pop((provider, symbol), None)

    def on_stop(self) -> None:
        log().info("flagger stopping", flagged=self.flagged)


sensitive = Flagger(threshold_pct=0.2)
