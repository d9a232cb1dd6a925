"""One supervised child's life as a state machine. No I/O: the supervisor loop starts and
signals processes and tells the machine what happened, with the time it happened.

    stopped --start--> starting --(up STARTUP_SECONDS)--> running
    starting/running --exit--> backoff (restart after a delay) | exited (policy: no restart)
                               | failed (more than max_restarts restarts within within_seconds)
    backoff --(delay)--> starting
    starting/running --stop--> stopping --exit--> stopped;   backoff --stop--> stopped
    stopped/exited/failed --start requested--> starting

Restart policies are OTP's: permanent always restarts, transient only after an abnormal exit
(nonzero code or a signal), temporary never. Exit code 2 (bad settings, runtime.spec) is never
restarted, whatever the policy: the child is failed at once. The restart delay doubles from BACKOFF_FIRST up
to BACKOFF_MAX, and starts over once a child has run for STABLE_SECONDS.

A restart can be requested (`restart NAME` on the control socket, e.g. by the heartbeat monitor
for a hung child): the loop kills the process, and its exit, whatever the code and the policy,
restarts it at once, counted as a restart (within max_restarts like any other).

A stop can be requested too (`stop NAME`): the child is *held*, stopped as at a system stop
(from backoff, or before it was ever started, at once) and never started nor restarted again,
whatever its policy, until a start is requested (`start NAME`, for a stopped, exited or failed
child), which starts it with a fresh restart-intensity window and backoff.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Any

import structlog

from tickmesh.runtime.spec import EXIT_BAD_SETTINGS
from tickmesh.supervisor.config import ChildConfig

STARTUP_SECONDS = 0.5
STABLE_SECONDS = 10.0
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 10.0


class State(StrEnum):
    STARTING = "starting"  # started less than STARTUP_SECONDS ago
    RUNNING = "running"
    BACKOFF = "backoff"  # exited, to be restarted after a delay
    STOPPING = "stopping"  # asked to stop, not yet gone
    STOPPED = "stopped"  # not started yet, or stopped (at a system stop, or on request)
    EXITED = "exited"  # exited, and its restart policy says to leave it so
    FAILED = "failed"  # restarted too often: given up on


class Child:
    def __init__(self, config: ChildConfig) -> None:
        self.config = config
        self.state = State.STOPPED
        self.pid: int | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self.ready = False  # said "ready" since it was last started
        self._started_at = 0.0
        self._restart_times: deque[float] = deque()
        self._backoff_level = 0
        self._restart_requested = False
        self.held = False  # stopped on request: neither started nor restarted until asked

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def restarting(self) -> bool:
        """A requested restart is under way: the process is being killed."""
        return self._restart_requested

    @property
    def pending(self) -> bool:
        """Stopped, and not on request: not started yet (the loop starts it once what it
        comes after is ready)."""
        return self.state is State.STOPPED and not self.held

    @property
    def stoppable(self) -> bool:
        """Is there something for a requested stop to stop: a process, a restart to come, or
        a first start?"""
        return self.state in (State.STARTING, State.RUNNING, State.BACKOFF) or self.pending

    @property
    def alive(self) -> bool:
        """Is there a process (to signal, to wait for)?"""
        return self.state in (State.STARTING, State.RUNNING, State.STOPPING)

    def started(self, pid: int, now: float) -> None:
        self.pid = pid
        self.ready = False
        self._started_at = now
        self._enter(State.STARTING, pid_of="keeper (supervisor.launch): the child's own pid "
                    "follows once the keeper reports it")

    def running_as(self, pid: int) -> None:
        """The child's own pid, as its keeper reported it (until then `pid` is the keeper's)."""
        if self.alive:
            self.pid = pid

    def up(self, pid: int) -> None:
        """STARTUP_SECONDS have passed since process `pid` was started."""
        if self.state is State.STARTING and self.pid == pid:
            self._enter(State.RUNNING)

    def exited(self, code: int, now: float) -> float | None:
        """The process exited with `code` (negative: killed by that signal). Returns the delay
        before restarting it, or None if it is not to be restarted."""
        self.exit_code = code
        self.pid = None
        self.ready = False
        requested, self._restart_requested = self._restart_requested, False
        if self.state is State.STOPPING:
            self._enter(State.STOPPED)
            return None
        if requested:
            return self._count_restart(now, requested=True)
        if code == EXIT_BAD_SETTINGS:
            self._enter(State.FAILED, reason="bad settings")
            return None
        if not self._policy_restarts(code):
            self._enter(State.EXITED)
            return None
        return self._count_restart(now)

    def request_restart(self) -> bool:
        """A restart was requested. True if there is a process to kill (its exit restarts it)."""
        if self.state not in (State.STARTING, State.RUNNING) or self.restarting:
            return False
        self._restart_requested = True
        structlog.get_logger().info("child restart requested", child=self.name, pid=self.pid)
        return True

    def request_stop(self) -> bool:
        """A stop was requested: hold the child stopped, whatever its state (`stoppable` says
        if there is anything to stop). True if a process must be killed now (its exit leaves
        it stopped)."""
        self.held = True
        structlog.get_logger().info("child stop requested", child=self.name, pid=self.pid)
        return self.stop()

    def request_start(self) -> bool:
        """A start was requested. True if the child is stopped, exited or failed: it is no
        longer held, and its restart-intensity window and backoff start over (the loop starts
        it now)."""
        if self.state not in (State.STOPPED, State.EXITED, State.FAILED):
            return False
        self.held = False
        self._restart_times.clear()
        self._backoff_level = 0
        structlog.get_logger().info("child start requested", child=self.name)
        return True

    def _count_restart(self, now: float, requested: bool = False) -> float | None:
        """Restart after a delay (none if requested), or fail after too many restarts."""
        while self._restart_times and now - self._restart_times[0] > self.config.within_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) >= self.config.max_restarts:
            self._enter(State.FAILED)
            return None
        self._restart_times.append(now)
        self.restarts += 1
        if requested:
            self._enter(State.BACKOFF, delay=0.0, reason="restart requested")
            return 0.0
        if now - self._started_at >= STABLE_SECONDS:
            self._backoff_level = 0
        delay = min(BACKOFF_FIRST * 2**self._backoff_level, BACKOFF_MAX)
        self._backoff_level += 1
        self._enter(State.BACKOFF, delay=delay)
        return delay

    def stop(self) -> bool:
        """The supervisor is stopping this child. True if a process must be signalled."""
        if self.state in (State.STARTING, State.RUNNING):
            self._enter(State.STOPPING)
            return True
        if self.state is State.BACKOFF:
            self._enter(State.STOPPED)
        return False

    def status(self, now: float) -> dict[str, Any]:
        return {
            "state": str(self.state),
            "pid": self.pid,
            "restarts": self.restarts,
            "uptime": round(now - self._started_at, 1) if self.alive else None,
            "ready": self.ready,
            "exit_code": self.exit_code,
        }

    def _policy_restarts(self, code: int) -> bool:
        return self.config.restart == "permanent" or (
            self.config.restart == "transient" and code != 0
        )

    def _enter(self, state: State, **details: Any) -> None:
        self.state = state
        structlog.get_logger().info(
            "child state", child=self.name, state=str(state), pid=self.pid,
            exit_code=self.exit_code, restarts=self.restarts, **details,
        )
