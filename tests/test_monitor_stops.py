"""The heartbeat monitor as a real process on a real bus raises no false alarm for a process
that stops on purpose (its final heartbeat): a consumer whose work ends (exit 0), and a handler
stopped with SIGTERM, as `tickmesh stop` and `reload` stop one, raise neither heartbeat_stopped
nor silent_connection. (The pure rules, and that a silent process still alarms, are in
test_monitor_state.py; a hung one, in test_monitor_restart.py.)"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tickmesh.bus import Alert, Heartbeat, Trade
from tests import simulators
from tests.buslog import BusLog

pytestmark = pytest.mark.timeout(60)

HEARTBEAT_TIMEOUT = 2.5  # heartbeats come every second: room for a late one
SILENT_AFTER = 1.0
RATE = 200  # the simulator's trades a second
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def start_monitor(spawn_child, feeds: dict | None = None) -> None:
    spawn_child("tickmesh.consumers.monitor", "monitor", {
        "heartbeat_timeout": HEARTBEAT_TIMEOUT, "restart_after": 0, "clear_after": 0.5,
        "check_interval": 0.1, "feeds": feeds or {}})


def after_final(bus: BusLog, name: str) -> int | None:
    """The place in the log right after `name`'s final heartbeat, once it came."""
    return next((i + 1 for i, e in enumerate(bus.events)
                 if isinstance(e, Heartbeat) and e.provider == name and e.final), None)


def monitor_receiving(bus: BusLog, at_least: int = 1) -> None:
    """Wait until the monitor's subscriptions are in place: it counts `at_least` events
    received."""
    bus.until(lambda _: any(h.metric("events_received") >= at_least
                            for h in bus.heartbeats("monitor")), what="the monitor receiving")


def wait_past_every_limit(bus: BusLog, since: int) -> None:
    """Four of the monitor's heartbeats after `since`: past HEARTBEAT_TIMEOUT and
    SILENT_AFTER, at check_interval 0.1 s."""
    bus.until(lambda _: len(bus.heartbeats("monitor", since)) >= 4,
              what="four monitor heartbeats after the stop")


def test_a_consumer_that_exits_0_raises_nothing(spawn_child, forwarder):
    with BusLog(forwarder.subscribe, ["alert", "heartbeat"]) as bus:
        start_monitor(spawn_child)
        monitor_receiving(bus)
        consumer = spawn_child("tests.children.chatter", "consumer",
                               {"lines": 40, "interval": 0.05, "pad": 10}, **QUIET)
        stopped = bus.until(lambda _: after_final(bus, "consumer"),
                            what="the consumer's last heartbeat")
        assert consumer.wait(timeout=10) == 0
        assert [h.final for h in bus.heartbeats("consumer")][-2:] == [False, True]  # seen alive
        wait_past_every_limit(bus, stopped)
        assert bus.of(Alert) == []


def test_a_handler_stopped_with_sigterm_raises_nothing(spawn_child, forwarder):
    with BusLog(forwarder.subscribe, ["alert", "heartbeat", "trade.alpaca"]) as bus:
        port, _ = simulators.start(spawn_child, "tickmesh.handlers.alpaca.sim.server", "alpaca-sim",
                                   None, {"rate": RATE, "symbols": ["AAPL"]})
        handler = spawn_child("tickmesh.handlers.alpaca.handler", "alpaca", {
            "url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["AAPL"]}, **QUIET)
        bus.until(lambda _: bus.of(Trade) and bus.heartbeats("alpaca"), what="trades, heartbeats")
        # the monitor after the feed flows (a configured feed silent from its start alarms)
        start_monitor(spawn_child, {"alpaca": {"calendar": "24/7",
                                               "silent_after": SILENT_AFTER}})
        monitor_receiving(bus, at_least=RATE // 2)  # more than heartbeats: it takes trades
        handler.send_signal(signal.SIGTERM)  # what `tickmesh stop alpaca` sends
        stopped = bus.until(lambda _: after_final(bus, "alpaca"),
                            what="the handler's last heartbeat")
        assert handler.wait(timeout=10) == 0
        wait_past_every_limit(bus, stopped)
        assert bus.of(Alert) == []
