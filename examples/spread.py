"""A spread monitor, as a function consumer: logs every quote's spread, absolute and in basis
points of the mid, and warns when it is wider than WIDE_BPS.

    tickmesh consume tickmesh.examples.spread:monitor [--pattern 'quote.*.AAPL']
"""

from __future__ import annotations

from tickmesh.bus.events import Quote
from tickmesh.runtime.consumer import consumer
from tickmesh.runtime.logs import log

WIDE_BPS = 50.0


@consumer("quote")
def monitor(quote: Quote) -> None:
    spread = quote.ask_price - quote.bid_price
    mid = (quote.ask_price + quote.bid_price) / 2
    bps = spread / mid * 10_000 if mid > 0 else 0.0
    level = log().warning if bps > WIDE_BPS else log().info
    level("spread", provider=quote.provider, symbol=quote.symbol, bid=quote.bid_price,
          ask=quote.ask_price, spread=round(spread, 10), bps=round(bps, 3), wide=bps > WIDE_BPS)
