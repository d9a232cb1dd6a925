"""What tests publish on the bus: sample market events, and publishing them until whoever should
hear them has (a subscription takes a while to reach the forwarder, and a publisher's first
events can be lost meanwhile).

    publisher.publish(trade("AAPL", 126.55))                          # alpaca, 1 share, made now
    first = send_until_received(sub, lambda: publisher.publish(trade("WARM")), "the subscription")
    feed_until(publisher, [quote("AAPL", 100.0, 100.5)], lambda: log_lines(log, "spread"),
               "the consumer's first spread")
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, TypeVar

from tickmesh.bus import Publisher, Quote, Subscriber, Trade
from tests.waiting import wait_until

T = TypeVar("T")


def trade(symbol: str, price: float = 1.0, size: float = 1.0, *, provider: str = "alpaca",
          **fields: Any) -> Trade:
    """A Trade of `size` at `price` on `symbol` from `provider`, made now: ts_event and ts_recv
    are time.time_ns() unless `fields` give them; `fields` set any other Trade field too (seq,
    epoch, exchange, conditions ...)."""
    now = time.time_ns()
    return Trade(**{"provider": provider, "symbol": symbol, "ts_event": now, "ts_recv": now,
                    "price": price, "size": size, **fields})


def quote(symbol: str, bid: float = 1.0, ask: float = 1.1, *, provider: str = "alpaca",
          **fields: Any) -> Quote:
    """A Quote of `bid` and `ask` (sizes 1.0 unless `fields` give bid_size, ask_size) on `symbol`
    from `provider`, made now: ts_event and ts_recv are time.time_ns() unless `fields` give
    them; `fields` set any other Quote field too."""
    now = time.time_ns()
    return Quote(**{"provider": provider, "symbol": symbol, "ts_event": now, "ts_recv": now,
                    "bid_price": bid, "bid_size": 1.0, "ask_price": ask, "ask_size": 1.0,
                    **fields})


def feed_until(publisher: Publisher, events: Iterable, condition: Callable[[], T], what: str,
               timeout: float = 15) -> T:
    """Publish `events` again and again (every 0.05 s) until `condition()` holds, and return
    what it returned; fail after `timeout` s, saying we waited for `what`."""
    events = list(events)

    def fed() -> T:
        for event in events:
            publisher.publish(event)
        return condition()

    return wait_until(fed, timeout=timeout, what=what, interval=0.05)


def send_until_received(sub: Subscriber, send: Callable[[], object], what: str,
                        timeout: float = 10) -> Any:
    """Call `send()` (a publish) again and again until `sub` receives an event, and return that
    event; fail after `timeout` s, saying we waited for `what`."""
    def sent_and_received() -> Any:
        send()
        return sub.recv(timeout=0.05)

    return wait_until(sent_and_received, timeout=timeout, what=what)
