"""The demo system of config/default.toml, whole, on free ports: every provider's trades reach
`tickmesh tail`, every handler connects at its first attempt, and a SIGKILLed handler is
restarted by the supervisor and flows again."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tickmesh.bus import Subscriber
from tests.buslog import BusLog
from tests.conftest import REPO, free_port
from tests.supervised import TICKMESH, Running, env
from tests.waiting import wait_until

# fixed ports (the demo's, the metrics port): never two such tests at once (pytest -n)
pytestmark = pytest.mark.xdist_group("fixed_ports")

DEMO_PORTS = (18765, 18766, 17497, 18767, 18768, 18769, 9108)
PROVIDERS = {"alpaca", "polygon", "ib"}


@pytest.fixture
def demo(spawn, run_dir) -> Running:
    """config/default.toml with its ports swapped for free ones, under a real supervisor."""
    text = (REPO / "config" / "default.toml").read_text()
    for port in DEMO_PORTS:
        assert str(port) in text
        text = text.replace(str(port), str(free_port()))
    config = run_dir / "demo.toml"
    config.write_text(text)
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_all_running(timeout=20)
    return supervisor


@pytest.mark.timeout(90)
def test_tail_shows_aapl_trades_from_every_provider(demo, spawn, run_dir):
    tail = spawn([*TICKMESH, "tail", "trade.*.AAPL", "--config", str(run_dir / "demo.toml")],
                 env=env(run_dir), stdout=subprocess.PIPE, text=True)
    seen: set[str] = set()

    def every_provider_seen() -> bool:
        event = json.loads(tail.stdout.readline())
        assert (event["k"], event["s"]) == ("trade", "AAPL")
        seen.add(event["p"])
        return seen == PROVIDERS

    wait_until(every_provider_seen, timeout=45, interval=0, what=f"AAPL trades from {PROVIDERS}")


@pytest.mark.timeout(90)
def test_a_sigkilled_handler_is_restarted_and_data_flows_again(demo, run_dir):
    with Subscriber(f"ipc://{run_dir}/subscribe", ["trade.alpaca"]) as trades:
        first = wait_until(lambda: trades.recv(timeout=0.1), timeout=20, what="an Alpaca trade")
        old_pid = demo.child("alpaca")["pid"]
        os.kill(old_pid, signal.SIGKILL)

        def from_the_restarted_handler() -> bool:
            event = trades.recv(timeout=0.1)
            return event is not None and event.epoch != first.epoch

        wait_until(from_the_restarted_handler, timeout=30, what="trades from the new handler")
    child = demo.child("alpaca")
    assert child["restarts"] == 1 and child["pid"] != old_pid


@pytest.mark.timeout(90)
def test_every_handler_connects_at_its_first_attempt(demo, run_dir):
    """The handlers start only once their simulators listen (`after`), so none is refused."""
    with BusLog(f"ipc://{run_dir}/subscribe", [f"heartbeat.{p}" for p in PROVIDERS]) as beats:
        latest = beats.until(lambda events: {p: b for b in events for p in [b.provider]}
                             if {b.provider for b in events} == PROVIDERS else None,
                             timeout=20, what="a heartbeat from every handler")
    assert {p: beat.metric("connects") for p, beat in latest.items()} == dict.fromkeys(PROVIDERS, 1)
