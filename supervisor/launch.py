"""Starting a child process that cannot outlive the supervisor, and learning when it exits.

A child is `python -m <module>` with its spec in TICKMESH_CHILD and the supervisor's pid in
TICKMESH_PARENT_PID, in its own process group (so a terminal's Ctrl-C reaches only the
supervisor, which then stops the children in order). Between fork and exec it asks the kernel
for SIGKILL when the supervisor dies (PR_SET_PDEATHSIG): even a child that never calls
bus.process.exit_with_parent dies with it. Linux only.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from typing import Callable

from bus.process import PARENT_ENV, PR_SET_PDEATHSIG, SPEC_ENV, ChildSpec

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork


def _die_with(parent_pid: int) -> Callable[[], None]:
    """Runs in the forked child before exec: as little as possible, no allocation-heavy work."""

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def start(module: str, spec: ChildSpec) -> subprocess.Popen:
    """Start `python -m module` as a child of this process; stdout and stderr are inherited."""
    parent_pid = os.getpid()
    env = dict(os.environ, **{SPEC_ENV: spec.to_json(), PARENT_ENV: str(parent_pid)})
    return subprocess.Popen(
        [sys.executable, "-m", module], env=env, process_group=0, preexec_fn=_die_with(parent_pid),
    )


def watch_exit(process: subprocess.Popen) -> asyncio.Future[int]:
    """A future for the process's exit code (negative: the signal that killed it); it also
    reaps the process. Watches a pidfd, so no SIGCHLD handler is involved."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(process.pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        future.set_result(process.wait())

    loop.add_reader(pidfd, reap)
    return future
