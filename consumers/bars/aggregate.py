"""Trades in, closed bars out: the pure side of the bar builder (consumers.bars), with the
clock passed in.

    aggregator = Aggregator(intervals=(1, 60), grace_ns=250_000_000, suffix="-bars")
    late = aggregator.add(trade, now_ns)  # the intervals whose bar had closed: usually []
    for bar in aggregator.close(now_ns):  # every bar whose end + grace has passed
        publish(bar)

The rules:
- A bar of `interval` seconds covers [start, start + interval) of the trades' own time
  (`ts_event`, the provider's clock), where start is a multiple of the interval since the Unix
  epoch: 1 s bars start on each second, 60 s bars on each minute, 300 s bars at :00, :05, ...
- One bar per (provider, symbol, interval, start) that has at least one trade: an interval
  without trades produces no bar.
- open and close are the trades with the earliest and the latest `ts_event` (ties: the first
  and the last to arrive); high, low, volume (sum of sizes), vwap (sum of price * size over
  volume; the close if the volume is 0) and trades (their count) over all of them.
- A bar closes once the wall clock `now` passes its end plus `grace`; it is then final.
- Late trades: a trade counts in each of its bars (one per interval) that is still open when
  it arrives, i.e. when `now` is before that bar's end + grace. For a bar that has closed it is
  late: counted in no bar of that interval, and `add` returns that interval (the process counts
  it in `bar_trades_late`). A published bar is final: never corrected, never published twice.
  So a late trade may count in a 60 s bar and not in its 1 s bar.
- The clock never goes back: `now` is the latest time either method was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.bus.events import Bar, Trade

NS = 1_000_000_000

BarKey = tuple[str, str, int, int]  # (provider, symbol, interval_s, start_ns)


@dataclass
class _Open:
    """A bar still taking trades."""

    open_ts: int
    open: float
    close_ts: int
    close: float
    high: float
    low: float
    volume: float = 0.0
    notional: float = 0.0  # sum of price * size
    trades: int = 0

    @classmethod
    def first(cls, trade: Trade) -> "_Open":
        bar = cls(trade.ts_event, trade.price, trade.ts_event, trade.price, trade.price,
                  trade.price)
        bar.add(trade)
        return bar

    def add(self, trade: Trade) -> None:
        price, ts = trade.price, trade.ts_event
        if ts < self.open_ts:
            self.open_ts, self.open = ts, price
        if ts >= self.close_ts:
            self.close_ts, self.close = ts, price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += trade.size
        self.notional += price * trade.size
        self.trades += 1


def bar_start(ts_event: int, interval_s: int) -> int:
    """The start, in ns, of the wall-clock-aligned bar of `interval_s` holding `ts_event`."""
    return ts_event - ts_event % (interval_s * NS)


class Aggregator:
    """Open bars of every (provider, symbol) at each interval (see the module's docstring)."""

    def __init__(self, intervals: tuple[int, ...], grace_ns: int, suffix: str = "") -> None:
        if not intervals or min(intervals) <= 0 or grace_ns < 0:
            raise ValueError("intervals must be positive, grace_ns 0 or more")
        self.intervals = tuple(sorted(set(intervals)))
        self.grace_ns = grace_ns
        self.suffix = suffix  # appended to the trades' provider in the bars' provider
        self.now = 0
        self._open: dict[BarKey, _Open] = {}

    def add(self, trade: Trade, now: int) -> list[int]:
        """Count `trade` in its bar at every interval whose bar is still open; returns the
        intervals at which it came late (its bar had closed), usually none."""
        self.now = max(self.now, now)
        late = []
        for interval_s in self.intervals:
            key = (trade.provider, trade.symbol, interval_s, bar_start(trade.ts_event, interval_s))
            if self._closed(key):
                late.append(interval_s)
            elif key in self._open:
                self._open[key].add(trade)
            else:
                self._open[key] = _Open.first(trade)
        return late

    def close(self, now: int) -> list[Bar]:
        """The bars whose end + grace has passed by `now`, oldest first; they leave the
        aggregator."""
        self.now = max(self.now, now)
        due = sorted((key for key in self._open if self._closed(key)),
                     key=lambda key: (key[3], key[2], key[0], key[1]))
        return [self._bar(key, self._open.pop(key)) for key in due]

    @property
    def open_bars(self) -> int:
        return len(self._open)

    def _closed(self, key: BarKey) -> bool:
        _provider, _symbol, interval_s, start = key
        return start + interval_s * NS + self.grace_ns <= self.now

    def _bar(self, key: BarKey, bar: _Open) -> Bar:
        provider, symbol, interval_s, start = key
        vwap = bar.notional / bar.volume if bar.volume else bar.close
        return Bar(provider=provider + self.suffix, symbol=symbol, ts_event=start,
                   ts_recv=self.now, interval_s=interval_s, open=bar.open, high=bar.high,
                   low=bar.low, close=bar.close, volume=bar.volume, vwap=vwap,
                   trades=bar.trades)
