"""The child state machine alone (no processes): policies, backoff, restart intensity."""

import pytest

from tickmesh.supervisor.child import BACKOFF_FIRST, BACKOFF_MAX, STABLE_SECONDS, Child, State
from tickmesh.supervisor.config import ChildConfig


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


# --- stop and start on request (`stop NAME`, `start NAME`) ---------------------------------

@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("code", [0, 1, -15, -9])
def test_a_requested_stop_holds_the_child_stopped_whatever_its_policy(restart, code):
    child = started(restart=restart)
    assert child.stoppable and child.request_stop() is True
    assert child.state is State.STOPPING and not child.stoppable
    assert child.exited(code, now=1.0) is None
    assert child.state is State.STOPPED and child.held and not child.pending
    assert child.restarts == 0 and not child.stoppable


def test_a_requested_stop_in_backoff_or_before_the_first_start_kills_nothing():
    backoff = started()
    backoff.exited(1, now=1.0)
    assert backoff.stoppable and backoff.request_stop() is False
    assert backoff.state is State.STOPPED and backoff.held
    unstarted = Child(ChildConfig("c", "m"))
    assert unstarted.pending and unstarted.stoppable
    assert unstarted.request_stop() is False and not unstarted.pending


def test_a_requested_stop_wins_over_a_requested_restart():
    child = started()
    child.request_restart()
    assert child.request_stop() is True
    assert child.exited(-15, now=1.0) is None and child.state is State.STOPPED


def test_nothing_to_stop_once_exited_or_failed():
    exited = started(restart="temporary")
    exited.exited(0, now=1.0)
    failed = started(max_restarts=0)
    failed.exited(1, now=1.0)
    assert not exited.stoppable and not failed.stoppable


def test_a_start_is_refused_while_a_process_runs_or_is_about_to():
    running = started()
    backoff = started()
    backoff.exited(1, now=1.0)
    stopping = started()
    stopping.request_stop()
    assert not any(child.request_start() for child in (running, backoff, stopping))


def test_a_requested_start_releases_a_held_child():
    child = started()
    child.request_stop()
    child.exited(-15, now=1.0)
    assert child.request_start() and not child.held and child.state is State.STOPPED
    child.started(pid=101, now=2.0)
    assert child.exited(1, now=3.0) is not None  # its policy applies again


def test_a_requested_start_gives_a_failed_child_a_fresh_restart_window():
    child = started(max_restarts=1, within_seconds=100)
    child.exited(1, now=1.0)
    child.started(pid=101, now=1.2)
    assert child.exited(1, now=2.0) is None and child.state is State.FAILED
    assert child.request_start()
    child.started(pid=102, now=3.0)
    assert child.exited(1, now=4.0) == BACKOFF_FIRST  # not failed at once: the window is new
    assert child.state is State.BACKOFF and child.restarts == 2
