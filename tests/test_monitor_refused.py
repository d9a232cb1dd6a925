"""The heartbeat monitor and a real Coinbase handler: a product the exchange refuses (the
simulator's /control/delist) raises one symbol_refused alert with the exchange's words, and
its listing again (/control/relist: the handler's Status "subscribed" for it) clears it."""

from __future__ import annotations

import subprocess

import pytest

from tickmesh.bus import Alert, Heartbeat
from tests import simulators
from tests.buslog import BusLog
from tests.simcontrol import control

pytestmark = pytest.mark.timeout(60)

PRODUCTS = ["BTC-USD", "SOL-USD"]


def refusals(bus: BusLog) -> list[Alert]:
    return [a for a in bus.of(Alert) if a.what == "symbol_refused"]


def test_a_refused_product_raises_an_alert_until_it_is_listed_again(spawn_child, forwarder):
    port, _ = simulators.start(spawn_child, "tickmesh.handlers.coinbase.sim.server", "coinbase-sim",
                               None, {"symbols": PRODUCTS})
    control(port, "delist", product="SOL-USD")
    with BusLog(forwarder.subscribe, ["alert", "heartbeat.monitor"]) as bus:
        spawn_child("tickmesh.consumers.monitor", "monitor", {
            "clear_after": 0.5, "check_interval": 0.1,
            "feeds": {"coinbase": {"calendar": "24/7", "silent_after": 30}}})
        bus.until(lambda _: any(h.metric("events_received") for h in bus.of(Heartbeat)),
                  what="the monitor receiving (its subscriptions in place: the refusal is "
                       "said once)")
        spawn_child("tickmesh.handlers.coinbase.handler", "coinbase", {
            "url": f"ws://127.0.0.1:{port}", "symbols": PRODUCTS, "refused_retry": 0.2,
            "refused_retry_max": 0.5}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        raised = bus.until(lambda _: refusals(bus), what="a symbol_refused alert")[0]
        assert "SOL-USD is not a valid product" in raised.message
        control(port, "relist", product="SOL-USD")
        bus.until(lambda _: len(refusals(bus)) == 2, what="the alert cleared")
        assert [(a.provider, a.symbol, a.state) for a in refusals(bus)] == [
            ("coinbase", "SOL-USD", "raised"), ("coinbase", "SOL-USD", "cleared")]
