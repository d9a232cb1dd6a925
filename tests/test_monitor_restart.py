"""A hung handler is restarted: the supervisor's `restart NAME` control command (the child state
machine alone, then the control socket and `tickmesh restart` on a real supervisor), and the
heartbeat monitor that asks for it when a SIGSTOPped handler's heartbeats stop."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tickmesh.bus import Alert, Heartbeat
from tickmesh.supervisor.child import Child, State
from tickmesh.supervisor.config import ChildConfig
from tickmesh.supervisor.control import BAD_REQUEST, request
from tests.buslog import BusLog
from tests.conftest import free_port
from tests.supervised import Running, alive, child_toml, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)
TICKER = "tests.children.ticker"


# --- the child state machine ---------------------------------------------------------------

def running(restart: str = "permanent", max_restarts: int = 5) -> Child:
    child = Child(ChildConfig("c", "m", restart=restart, max_restarts=max_restarts))
    child.started(pid=100, now=0.0)
    child.up(100)
    return child


@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("code", [0, -15, -9])
def test_a_requested_restart_restarts_at_once_whatever_the_policy(restart, code):
    child = running(restart)
    assert child.request_restart() and child.restarting
    assert not child.request_restart()  # once: it is already being killed
    assert child.exited(code, now=1.0) == 0.0
    assert child.state is State.BACKOFF and child.restarts == 1 and not child.restarting


def test_requested_restarts_count_towards_max_restarts():
    child = running(max_restarts=1)
    child.request_restart()
    child.exited(-15, now=1.0)
    child.started(pid=101, now=1.0)
    child.request_restart()
    assert child.exited(-15, now=2.0) is None and child.state is State.FAILED


def test_nothing_to_restart_unless_a_process_runs():
    child = running()
    child.exited(1, now=1.0)  # in backoff
    assert not child.request_restart()
    stopping = running()
    stopping.request_restart()
    assert stopping.stop()  # a stop wins over the restart under way
    assert stopping.exited(-15, now=1.0) is None and stopping.state is State.STOPPED


# --- the control socket and `tickmesh restart` ---------------------------------------------

def test_restart_command_and_its_exit_codes(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER, restart="temporary"))
    supervisor = Running(spawn, run_dir, config)
    old = supervisor.wait_for("ticker", "running")["pid"]

    done = tickmesh(spawn, run_dir, "restart", "ticker")
    assert done.code == 0 and f"pid {old}" in done.out
    new = wait_until(lambda: (c := supervisor.child("ticker")) and c["state"] == "running"
                     and c["pid"] != old and c, what="ticker restarted")
    assert new["restarts"] == 1 and not alive(old)  # temporary, yet restarted: it was asked

    unknown = tickmesh(spawn, run_dir, "restart", "nope")
    assert unknown.code == 2 and "unknown child 'nope'" in unknown.err
    answer = request(supervisor.control, b"restart", timeout=2)
    assert answer["reason"] == BAD_REQUEST
    assert supervisor.child("ticker")["pid"] == new["pid"]


def test_restart_without_a_supervisor_exits_1(spawn, run_dir):
    assert tickmesh(spawn, run_dir, "restart", "ticker").code == 1


# --- the monitor restarts a hung handler ---------------------------------------------------

def hung_handler_config(run_dir: Path) -> Path:
    port = free_port()
    return write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": port, "rate": 20, "symbols": ["AAPL"]}),
        child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                   {"url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["AAPL"]},
                   after=["alpaca-sim"], shutdown_timeout=0.5),
        child_toml("monitor", "tickmesh.consumers.monitor",
                   {"heartbeat_timeout": 1.5, "restart_after": 2.5, "clear_after": 0.5,
                    "check_interval": 0.2, "control_endpoint": "ipc://{run_dir}/control"}))


def test_a_sigstopped_handler_is_reported_and_restarted(spawn, run_dir):
    supervisor = Running(spawn, run_dir, hung_handler_config(run_dir))
    before = supervisor.wait_all_running(timeout=15)["children"]["alpaca"]
    with BusLog(f"ipc://{run_dir}/subscribe", ["alert.alpaca", "heartbeat.monitor"]) as bus:
        os.kill(before["pid"], signal.SIGSTOP)
        after = wait_until(lambda: (c := supervisor.child("alpaca")) and c["state"] == "running"
                           and c["pid"] != before["pid"] and c, timeout=20,
                           what="the hung handler restarted")
        assert after["restarts"] == before["restarts"] + 1
        assert not alive(before["pid"])
        bus.until(lambda _: [(a.what, a.state) for a in bus.of(Alert)] == [
            ("heartbeat_stopped", "raised"), ("heartbeat_stopped", "cleared")],
            what="heartbeat_stopped raised, then cleared")
        asked = bus.until(lambda beats: [h for h in bus.of(Heartbeat) if h.metric(
            "restart_requests", outcome="restarted")], what="the monitor's count of it")[-1]
        assert asked.metric("restart_requests", outcome="restarted") == 1
        assert asked.metric("alerts_raised", what="heartbeat_stopped") == 1
