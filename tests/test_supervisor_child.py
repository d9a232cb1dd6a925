"""The child state machine alone (no processes): policies, backoff, restart intensity."""

import pytest

from supervisor.child import BACKOFF_FIRST, BACKOFF_MAX, STABLE_SECONDS, Child, State
from supervisor.config import ChildConfig


def started(restart="permanent", max_restarts=5, within_seconds=60.0, now=0.0) -> Child:
    child = Child(ChildConfig("c", "m", restart=restart, max_restarts=max_restarts,
                              within_seconds=within_seconds))
    child.started(pid=100, now=now)
    return child


@pytest.mark.parametrize("restart, code, restarted", [
    ("permanent", 0, True), ("permanent", 1, True), ("permanent", -9, True),
    ("transient", 0, False), ("transient", 1, True), ("transient", -9, True),
    ("temporary", 0, False), ("temporary", 1, False), ("temporary", -9, False),
])
def test_restart_policies(restart, code, restarted):
    child = started(restart)
    delay = child.exited(code, now=1.0)
    assert (delay is not None) == restarted
    assert child.state is (State.BACKOFF if restarted else State.EXITED)
    assert child.exit_code == code and child.pid is None


def test_backoff_doubles_up_to_its_cap():
    child = started(max_restarts=100, within_seconds=1000)
    delays = []
    for now in range(10):
        delays.append(child.exited(1, now=float(now)))
        child.started(pid=100 + now, now=float(now))
    assert delays[:3] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST, 4 * BACKOFF_FIRST]
    assert max(delays) == BACKOFF_MAX == delays[-1]


def test_backoff_starts_over_after_a_stable_run():
    child = started(max_restarts=100)
    child.exited(1, now=0.1)
    child.started(pid=101, now=0.3)
    assert child.exited(1, now=0.4) == 2 * BACKOFF_FIRST
    child.started(pid=102, now=1.0)
    assert child.exited(1, now=1.0 + STABLE_SECONDS) == BACKOFF_FIRST


def test_more_than_max_restarts_within_the_window_fails():
    child = started(max_restarts=2, within_seconds=10)
    assert child.exited(1, now=1) is not None
    child.started(pid=101, now=2)
    assert child.exited(1, now=3) is not None
    child.started(pid=102, now=4)
    assert child.exited(1, now=5) is None
    assert child.state is State.FAILED and child.restarts == 2


def test_restarts_older_than_the_window_do_not_count():
    child = started(max_restarts=1, within_seconds=10)
    assert child.exited(1, now=1) is not None
    child.started(pid=101, now=2)
    assert child.exited(1, now=12) is not None
    assert child.restarts == 2 and child.state is State.BACKOFF


def test_up_promotes_only_the_current_process():
    child = started()
    child.exited(1, now=0.1)
    child.started(pid=101, now=0.3)
    child.up(pid=100)
    assert child.state is State.STARTING
    child.up(pid=101)
    assert child.state is State.RUNNING


def test_stopping():
    running = started()
    assert running.stop() is True and running.state is State.STOPPING
    assert running.exited(0, now=1) is None and running.state is State.STOPPED
    waiting = started()
    waiting.exited(1, now=1)
    assert waiting.stop() is False and waiting.state is State.STOPPED
    failed = started(max_restarts=0)
    failed.exited(1, now=1)
    assert failed.stop() is False and failed.state is State.FAILED


def test_status():
    child = started(now=10.0)
    assert child.status(now=12.5) == {
        "state": "starting", "pid": 100, "restarts": 0, "uptime": 2.5, "exit_code": None,
        "ready": False,
    }
    child.exited(-9, now=13.0)
    assert child.status(now=14.0)["uptime"] is None


def test_bad_settings_exit_code_2_fails_at_once_whatever_the_policy():
    for policy in ("permanent", "transient"):
        child = started(restart=policy)
        assert child.exited(2, now=1.0) is None
        assert child.state is State.FAILED and child.restarts == 0
