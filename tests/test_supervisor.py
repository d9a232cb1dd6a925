"""The supervisor as a real process: restarts, failure, orphans, orderly stop, policies."""

import json
import os
import signal

from tickmesh.bus import Subscriber
from tests.supervised import Running, alive, child_toml, tickmesh, write_config
from tests.waiting import wait_until

TICKER = "tests.children.ticker"
CRASHER = "tests.children.crasher"
STUBBORN = "tests.children.stubborn"


def test_a_killed_child_is_restarted_and_its_data_flows_again(spawn, run_dir):
    supervisor = Running(spawn, run_dir, write_config(run_dir, child_toml("ticker", TICKER)))
    subscriber = Subscriber(f"ipc://{run_dir}/subscribe", ["trade.ticker"])
    first = wait_until(lambda: subscriber.recv(timeout=0.1), what="a trade from the ticker")
    old_pid = supervisor.wait_for("ticker", "running")["pid"]

    os.kill(old_pid, signal.SIGKILL)

    def from_a_new_epoch():
        event = subscriber.recv(timeout=0.1)
        return event is not None and event.epoch != first.epoch

    wait_until(from_a_new_epoch, what="a trade from the restarted ticker")
    child = supervisor.child("ticker")
    assert child["restarts"] == 1 and child["exit_code"] == -signal.SIGKILL
    assert child["pid"] not in (None, old_pid)
    assert subscriber.tracker.restarts == 1 and subscriber.gaps == 0
    subscriber.close()


def test_a_child_that_always_crashes_ends_failed(spawn, run_dir):
    config = write_config(run_dir, child_toml("crasher", CRASHER, max_restarts=2))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_for("crasher", "failed")

    result = tickmesh(spawn, run_dir, "status", str(config), "--json")

    assert result.code == 0, result.err
    children = json.loads(result.out)["children"]
    assert children["crasher"] == {
        "state": "failed", "pid": None, "restarts": 2, "uptime": None, "exit_code": 1,
        "ready": False, "cpu_percent": None, "rss_bytes": None,
        "health": children["crasher"]["health"],  # its last heartbeat's, if it sent one
    }
    assert children["forwarder"]["state"] in ("starting", "running")


def test_no_child_survives_a_sigkilled_supervisor(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER), child_toml("stubborn", STUBBORN))
    supervisor = Running(spawn, run_dir, config)
    pids = [child["pid"] for child in supervisor.wait_all_running()["children"].values()]
    assert len(pids) == 3 and all(alive(pid) for pid in pids)

    os.kill(supervisor.process.pid, signal.SIGKILL)

    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=2,
               what="every child to die with the supervisor")


def test_sigint_stops_every_child_in_reverse_order_and_exits_0(spawn, run_dir):
    names = ["first", "second", "third"]
    config = write_config(run_dir, *(child_toml(name, TICKER) for name in names))
    supervisor = Running(spawn, run_dir, config)
    pids = [child["pid"] for child in supervisor.wait_all_running()["children"].values()]

    os.kill(supervisor.process.pid, signal.SIGINT)

    assert supervisor.process.wait(timeout=5) == 0
    stopped = [event["child"] for event in supervisor.log_events()
               if event.get("state") == "stopped"]
    assert stopped == ["third", "second", "first", "forwarder"]
    assert not any(alive(pid) for pid in pids)


def test_a_child_that_ignores_sigterm_is_killed_after_its_shutdown_timeout(spawn, run_dir):
    config = write_config(run_dir, child_toml("stubborn", STUBBORN, shutdown_timeout=0.3))
    supervisor = Running(spawn, run_dir, config)
    pid = supervisor.wait_for("stubborn", "running")["pid"]

    os.kill(supervisor.process.pid, signal.SIGTERM)

    assert supervisor.process.wait(timeout=5) == 0
    stopped = [event for event in supervisor.log_events() if event.get("child") == "stubborn"
               and event.get("state") == "stopped"]
    assert stopped[0]["exit_code"] == -signal.SIGKILL
    assert not alive(pid)


def test_restart_policies(spawn, run_dir):
    config = write_config(
        run_dir,
        child_toml("transient-ok", CRASHER, {"code": 0}, restart="transient"),
        child_toml("transient-bad", CRASHER, {"code": 3}, restart="transient", max_restarts=1),
        child_toml("temporary-bad", CRASHER, {"code": 3}, restart="temporary"),
        child_toml("permanent-ok", CRASHER, {"code": 0}, restart="permanent", max_restarts=1),
    )
    supervisor = Running(spawn, run_dir, config)

    def settled():
        status = supervisor.status()
        children = status["children"] if status else {}
        crashers = [c for name, c in children.items() if name != "forwarder"]
        done = crashers and all(c["state"] in ("exited", "failed") for c in crashers)
        return children if done else None

    children = wait_until(settled, what="every crasher to be exited or failed")
    outcome = {name: (c["state"], c["restarts"], c["exit_code"]) for name, c in children.items()}
    assert outcome == {
        "forwarder": (children["forwarder"]["state"], 0, None),
        "transient-ok": ("exited", 0, 0),
        "transient-bad": ("failed", 1, 3),
        "temporary-bad": ("exited", 0, 3),
        "permanent-ok": ("failed", 1, 0),
    }
