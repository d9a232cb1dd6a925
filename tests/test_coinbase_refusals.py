"""A product that Coinbase refuses (unknown or delisted), pure: the others are subscribed
again without it at once, on this connection; the refusal is a Status "error" for that
product and counted; the product is retried alone, rarely, with a capped backoff that
outlives reconnects, and is "subscribed" again once the exchange lists it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tickmesh.bus.events import BookSnapshot
from tickmesh.handlers.coinbase.handler import CoinbaseSettings
from tickmesh.handlers.coinbase.protocol import CoinbaseProtocol
from tickmesh.handlers.common.protocol import Change, Output, Timer
from tickmesh.runtime.settings import SettingsError

pytestmark = pytest.mark.timeout(30)
TS = 1_700_000_000_000_000_000
PRODUCTS = ["BTC-USD", "ETH-USD", "XRP-USD"]
CHANNELS = ["level2_batch", "matches", "heartbeat"]
REFUSED = "Failed to subscribe: XRP-USD is not a valid product"
RETRY_REFUSED = 300.0  # the default: a refused product is retried after 5 minutes, then less often


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def frame(**message) -> bytes:
    return json.dumps(message).encode()


def refusal(product: str = "XRP-USD") -> bytes:
    return frame(type="error", message="Failed to subscribe",
                 reason=f"{product} is not a valid product")


def listing(*products: str) -> bytes:
    """The exchange's subscriptions: these products on every channel."""
    return frame(type="subscriptions", channels=[{"name": name, "product_ids": list(products)}
                                                 for name in CHANNELS])


def subscribes(out: Output) -> list[list[str]]:
    """The product lists of the subscribes an Output sends."""
    sent = [json.loads(reply) for reply in out.replies]
    assert all(r["type"] == "subscribe" and r["channels"] == CHANNELS for r in sent), sent
    return [r["product_ids"] for r in sent]


def connected(products=PRODUCTS, **settings) -> CoinbaseProtocol:
    p = CoinbaseProtocol(products, counters=Counter(), clock=Clock(), **settings)
    p.start()
    return p


def refused_once(**settings) -> CoinbaseProtocol:
    """XRP-USD refused, BTC-USD and ETH-USD subscribed without it."""
    p = connected(**settings)
    p.receive(refusal(), TS)
    p.receive(listing("BTC-USD", "ETH-USD"), TS)
    return p


def test_a_refused_product_is_reported_and_the_others_subscribed_again_without_it():
    p = connected()
    out = p.receive(refusal(), TS)
    assert out.changes == [Change("error", 1, REFUSED, "XRP-USD")]
    assert subscribes(out) == [["BTC-USD", "ETH-USD"]]
    assert out.effects == [Timer("retry-refused:XRP-USD", RETRY_REFUSED)]
    assert not out.close
    assert p.counters["symbols_refused", "coinbase"] == 1


def test_subscribed_once_the_exchange_lists_our_products_not_at_its_empty_answer():
    p = connected()
    p.receive(refusal(), TS)
    assert p.receive(frame(type="subscriptions", channels=[]), TS).changes == []
    out = p.receive(listing("BTC-USD", "ETH-USD"), TS)
    assert [(c.state, c.symbol) for c in out.changes] == [("subscribed", "")]
    assert "2 of 3 products" in out.changes[0].message


def test_each_refused_product_is_left_out_in_turn():
    p = connected(["BTC-USD", "XRP-USD", "LUNA-USD", "ETH-USD"])
    assert subscribes(p.receive(refusal("XRP-USD"), TS)) == [["BTC-USD", "LUNA-USD", "ETH-USD"]]
    p.receive(frame(type="subscriptions", channels=[]), TS)
    out = p.receive(refusal("LUNA-USD"), TS)
    assert subscribes(out) == [["BTC-USD", "ETH-USD"]]
    assert [(c.state, c.symbol) for c in out.changes] == [("error", "LUNA-USD")]
    assert p.counters["symbols_refused", "coinbase"] == 2


def test_a_refused_product_is_retried_alone_rarely_with_a_capped_backoff():
    p = refused_once(refused_retry=60.0, refused_retry_max=200.0)
    key = "retry-refused:XRP-USD"
    for delay in (120.0, 200.0, 200.0):
        assert subscribes(p.timer(key, TS)) == [["XRP-USD"]]
        out = p.receive(refusal(), TS)
        assert not out.replies and not out.changes  # the others are subscribed already
        assert out.effects == [Timer(key, delay)]
        p.receive(listing("BTC-USD", "ETH-USD"), TS)
    assert p.counters["symbols_refused", "coinbase"] == 4


def test_a_product_listed_again_is_subscribed_and_streams():
    p = refused_once()
    assert subscribes(p.timer("retry-refused:XRP-USD", TS)) == [["XRP-USD"]]
    out = p.receive(listing(*PRODUCTS), TS)
    assert [(c.state, c.symbol) for c in out.changes] == [("subscribed", "XRP-USD")]
    snapshot = frame(type="snapshot", product_id="XRP-USD", bids=[["0.50", "10"]],
                     asks=[["0.51", "20"]])
    assert isinstance(p.receive(snapshot, TS).events[0], BookSnapshot)
    assert p.timer("retry-refused:XRP-USD", TS) == Output()  # a stale timer does nothing
    assert p.receive(listing(*PRODUCTS), TS).changes == []


def test_a_reconnect_leaves_the_refused_product_out_until_its_retry_is_due():
    p = refused_once()
    p.clock.now += 100
    out = p.start()
    assert subscribes(out) == [["BTC-USD", "ETH-USD"]]
    assert out.effects == [Timer("retry-refused:XRP-USD", RETRY_REFUSED - 100)]
    assert p.receive(listing("BTC-USD", "ETH-USD"), TS).changes[0].state == "subscribed"
    p.clock.now += RETRY_REFUSED
    assert p.start().effects == [Timer("retry-refused:XRP-USD", 0.0)]


def test_when_every_product_is_refused_each_connection_asks_for_them_all():
    p = connected(["XRP-USD"])
    out = p.receive(refusal(), TS)
    assert not out.replies and out.changes[0].symbol == "XRP-USD"
    assert subscribes(p.start()) == [["XRP-USD"]]


def test_a_resync_asked_for_a_refused_product_waits_for_its_retry():
    p = refused_once()
    assert not p.resubscribe("XRP-USD").replies


@pytest.mark.parametrize("reason", ["Invalid product ID provided",
                                    "DOGE-USD is not a valid product",
                                    " is not a valid product"])
def test_a_refusal_naming_no_product_of_ours_is_only_an_error(reason):
    p = connected()
    out = p.receive(frame(type="error", message="Failed to subscribe", reason=reason), TS)
    assert [(c.state, c.symbol) for c in out.changes] == [("error", "")]
    assert not out.replies and not out.effects
    assert not p.counters["symbols_refused", "coinbase"]


def test_the_retry_settings_have_sane_defaults_and_are_checked():
    settings = CoinbaseSettings(url="ws://127.0.0.1:1", symbols=["BTC-USD"])
    assert (settings.refused_retry, settings.refused_retry_max) == (300.0, 3600.0)
    with pytest.raises(SettingsError, match="refused_retry"):
        CoinbaseSettings(url="ws://127.0.0.1:1", symbols=["BTC-USD"], refused_retry=0)
    with pytest.raises(SettingsError, match="refused_retry_max"):
        CoinbaseSettings(url="ws://127.0.0.1:1", symbols=["BTC-USD"], refused_retry=60,
                         refused_retry_max=30)
