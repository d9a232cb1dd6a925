"""The supervisor's commands on a real supervisor: `tickmesh stop NAME` and `start NAME`,
`stop` of the whole system, `reload`, and their exit codes (2: no such child, or a bad config;
3: refused; 1: no supervisor, naming the run dir)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tickmesh.bus import Subscriber
from tickmesh.supervisor.control import request
from tests.supervised import Running, alive, child_toml, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)
TICKER = "tests.children.ticker"
CRASHER = "tests.children.crasher"
STUBBORN = "tests.children.stubborn"


def states(supervisor: Running, name: str) -> list[str]:
    """Every state child `name` has been in, as the supervisor logged them."""
    return [event["state"] for event in supervisor.log_events()
            if event.get("child") == name and event.get("event") == "child state"]


def new_process(supervisor: Running, name: str, old_pid: int) -> dict:
    """Wait until child `name` runs with another pid than `old_pid`; its status."""
    def restarted() -> dict | None:
        child = supervisor.child(name)
        return child if child and child["state"] == "running" and child["pid"] != old_pid else None

    return wait_until(restarted, what=f"{name} running with a new pid")


# --- stop NAME, start NAME ------------------------------------------------------------------

def test_a_stopped_child_stays_stopped_until_started(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER),
                          child_toml("stubborn", STUBBORN, shutdown_timeout=0.3))
    supervisor = Running(spawn, run_dir, config)
    pids = {name: child["pid"] for name, child in
            supervisor.wait_all_running()["children"].items()}

    stopped = tickmesh(spawn, run_dir, "stop", "ticker")
    assert stopped.code == 0, stopped.err
    assert stopped.out == f"stopped ticker (pid {pids['ticker']})\n"
    assert not alive(pids["ticker"])
    # stubborn's stop takes its 0.3 s shutdown_timeout: longer than ticker's first backoff
    killed = tickmesh(spawn, run_dir, "stop", "stubborn", "--json")
    assert killed.code == 0, killed.err
    assert json.loads(killed.out) == {"ok": True, "child": "stubborn", "pid": pids["stubborn"]}
    assert supervisor.wait_for("stubborn", "stopped")["exit_code"] == -signal.SIGKILL
    ticker = supervisor.wait_for("ticker", "stopped")
    assert ticker["pid"] is None and ticker["restarts"] == 0  # permanent, yet not restarted
    refused = tickmesh(spawn, run_dir, "restart", "ticker")
    assert refused.code == 3 and "ticker is stopped: nothing to restart" in refused.err

    started = tickmesh(spawn, run_dir, "start", "ticker", "--json")
    assert started.code == 0, started.err
    assert json.loads(started.out) == {"ok": True, "child": "ticker"}
    assert new_process(supervisor, "ticker", pids["ticker"])["restarts"] == 0
    assert states(supervisor, "ticker") == ["starting", "running", "stopping", "stopped",
                                            "starting", "running"]
    assert supervisor.child("stubborn")["state"] == "stopped"


def test_start_gives_a_failed_child_a_fresh_restart_window(spawn, run_dir):
    config = write_config(run_dir, child_toml("crasher", CRASHER, max_restarts=1))
    supervisor = Running(spawn, run_dir, config)
    assert supervisor.wait_for("crasher", "failed")["restarts"] == 1

    started = tickmesh(spawn, run_dir, "start", "crasher")
    assert started.code == 0 and started.out == "starting crasher\n", started.err

    def failed_again() -> dict | None:
        child = supervisor.child("crasher")
        return child if child["state"] == "failed" and child["restarts"] == 2 else None

    wait_until(failed_again, what="the crasher restarted once more, then failed")


def test_refusals_and_unknown_children(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    pid = supervisor.wait_all_running()["children"]["ticker"]["pid"]

    forwarder = tickmesh(spawn, run_dir, "stop", "forwarder")
    assert forwarder.code == 3 and "every process depends on it" in forwarder.err
    running = tickmesh(spawn, run_dir, "start", "ticker", str(config))
    assert running.code == 3 and "ticker is running: already started" in running.err
    for command in ("start", "stop", "restart"):
        unknown = tickmesh(spawn, run_dir, command, "nope")
        assert unknown.code == 2, (command, unknown.err)
        assert "unknown child 'nope'; children: forwarder, ticker" in unknown.err
    assert supervisor.child("ticker")["pid"] == pid


# --- stop: the whole system -----------------------------------------------------------------

def test_stop_stops_every_child_in_reverse_order_and_the_supervisor_exits(spawn, run_dir):
    names = ["first", "second", "stubborn"]
    config = write_config(run_dir, child_toml("first", TICKER), child_toml("second", TICKER),
                          child_toml("stubborn", STUBBORN, shutdown_timeout=0.3))
    supervisor = Running(spawn, run_dir, config)
    pids = [child["pid"] for child in supervisor.wait_all_running()["children"].values()]

    result = tickmesh(spawn, run_dir, "stop")

    assert result.code == 0, result.err
    assert result.out == (f"stopped the system: its supervisor (pid {supervisor.process.pid}) "
                          f"has exited (run dir {run_dir})\n")
    assert supervisor.process.wait(timeout=1) == 0
    stopped = [event["child"] for event in supervisor.log_events()
               if event.get("state") == "stopped"]
    assert stopped == [*reversed(names), "forwarder"]
    assert not any(alive(pid) for pid in pids)
    assert not (run_dir / "system.json").exists()


def test_stop_with_a_config_and_json(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    pids = [child["pid"] for child in supervisor.wait_all_running()["children"].values()]

    result = tickmesh(spawn, run_dir, "stop", str(config), "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {"ok": True, "pid": supervisor.process.pid}
    assert supervisor.process.wait(timeout=1) == 0
    assert not any(alive(pid) for pid in pids)


# --- reload ---------------------------------------------------------------------------------

def test_reload_applies_what_changed_among_the_children(spawn, run_dir):
    config = write_config(run_dir, child_toml("same", TICKER), child_toml("going", TICKER),
                          child_toml("changing", TICKER, {"symbol": "OLD"}))
    supervisor = Running(spawn, run_dir, config)
    before = supervisor.wait_all_running()["children"]
    write_config(run_dir, child_toml("changing", TICKER, {"symbol": "NEW"}),
                 child_toml("same", TICKER), child_toml("new", TICKER, after=["changing"]))

    result = tickmesh(spawn, run_dir, "reload", "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out) == {
        "ok": True, "config": str(config), "added": ["new"], "removed": ["going"],
        "changed": ["changing"], "unchanged": ["same"],
    }
    after = supervisor.wait_all_running()["children"]
    assert list(after) == ["forwarder", "changing", "same", "new"]
    assert after["same"]["pid"] == before["same"]["pid"]
    assert after["forwarder"]["pid"] == before["forwarder"]["pid"]
    assert not alive(before["going"]["pid"]) and not alive(before["changing"]["pid"])
    subscriber = Subscriber(f"ipc://{run_dir}/subscribe", ["trade.changing"])
    trade = wait_until(lambda: subscriber.recv(timeout=0.1), what="a trade from 'changing'")
    assert trade.symbol == "NEW"  # its new settings
    subscriber.close()
    events = supervisor.log_events()
    ready = max(i for i, event in enumerate(events)
                if event.get("event") == "child ready" and event.get("child") == "changing")
    starting = min(i for i, event in enumerate(events)
                   if event.get("child") == "new" and event.get("state") == "starting")
    assert ready < starting  # "new" comes after "changing", as at start


def test_reload_of_a_bad_config_changes_nothing(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    before = supervisor.wait_all_running()["children"]

    write_config(run_dir, child_toml("ticker", TICKER, {"colour": "red"}),
                 child_toml("other", TICKER))
    bad = tickmesh(spawn, run_dir, "reload", "--json")
    assert bad.code == 2
    answer = json.loads(bad.out)
    problem = "children[0] (ticker).settings.colour: unknown key"
    assert answer["reason"] == "bad_config" and problem in answer["problems"][0]
    assert f"{config}: {problem}" in bad.err

    write_config(run_dir, "[bus]\nhwm = 1000\n", child_toml("ticker", TICKER))
    fixed = tickmesh(spawn, run_dir, "reload")
    assert fixed.code == 3 and "restart the system to apply: bus.hwm" in fixed.err
    after = supervisor.status()["children"]  # the same children, the same processes
    assert {name: child["pid"] for name, child in after.items()} \
        == {name: child["pid"] for name, child in before.items()}


def test_reload_of_another_file_is_refused_naming_the_one_running(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    before = supervisor.wait_all_running()["children"]
    other = run_dir / "other.toml"  # the same run dir, so the same control socket
    other.write_text(child_toml("ticker", TICKER) + child_toml("new", TICKER))

    refused = tickmesh(spawn, run_dir, "reload", str(other))

    assert refused.code == 2 and refused.out == ""
    assert f"the running system reads {config}, not {other}" in refused.err
    assert f"stop it (`tickmesh stop`) and `tickmesh run {other}`" in refused.err
    asked = request(supervisor.control, f"reload {other}".encode(), 20)  # any client: the same
    assert asked["reason"] == "other_config" and str(config) in asked["error"]
    after = supervisor.status()["children"]
    assert {name: child["pid"] for name, child in after.items()} \
        == {name: child["pid"] for name, child in before.items()}


def test_reload_of_the_running_file_by_another_path_or_a_copy_applies_it(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_all_running()
    link = run_dir / "link.toml"
    link.symlink_to(config)
    write_config(run_dir, child_toml("ticker", TICKER), child_toml("new", TICKER))

    by_link = tickmesh(spawn, run_dir, "reload", str(link))
    assert by_link.code == 0, by_link.err
    assert by_link.out.splitlines()[:2] == [f"reloaded {config}", "  added:     new"]

    write_config(run_dir, child_toml("ticker", TICKER), child_toml("newer", TICKER))
    copy = run_dir / "copy.toml"
    copy.write_text(config.read_text())
    by_copy = tickmesh(spawn, run_dir, "reload", str(copy), "--json")
    assert by_copy.code == 0, by_copy.err
    assert json.loads(by_copy.out) == {"ok": True, "config": str(config), "added": ["newer"],
                                       "removed": ["new"], "changed": [],
                                       "unchanged": ["ticker"]}
    assert list(supervisor.wait_all_running()["children"]) == ["forwarder", "ticker", "newer"]


# --- no supervisor --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["stop"], ["stop", "ticker"], ["start", "ticker"],
                                     ["restart", "ticker"], ["reload"]])
def test_without_a_system_the_commands_exit_1_naming_the_run_dir(spawn, run_dir, command):
    result = tickmesh(spawn, run_dir, *command)
    assert result.code == 1
    assert f"no running system found in {run_dir}" in result.err


def test_a_system_file_left_by_a_killed_supervisor_exits_1_naming_the_run_dir(spawn, run_dir):
    supervisor = Running(spawn, run_dir, write_config(run_dir, child_toml("ticker", TICKER)))
    supervisor.wait_all_running()
    os.kill(supervisor.process.pid, signal.SIGKILL)
    supervisor.process.wait(timeout=5)
    assert Path(run_dir / "system.json").exists()

    for command in (["stop"], ["reload"], ["start", "ticker"]):
        result = tickmesh(spawn, run_dir, *command, "--timeout", "0.2")
        assert result.code == 1, (command, result.err)
        assert f"no supervisor answered at ipc://{run_dir}/control within 0.2 s" in result.err
        assert f"run dir {run_dir}" in result.err
