"""Starting a child process that cannot outlive the supervisor, and learning when it exits.

A child is `python -m <module>` with its spec in TICKMESH_CHILD and the supervisor's pid in
TICKMESH_PARENT_PID, in its own process group (so a terminal's Ctrl-C reaches only the
supervisor, which then stops the children in order). Between fork and exec it asks the kernel
for SIGKILL when the supervisor dies (PR_SET_PDEATHSIG): even a child that never calls
runtime.lifeline.exit_with_parent dies with it. Linux only.

The child gets the write end of a pipe in TICKMESH_READY_FD, to say "ready" on
(runtime.readiness); `watch_ready` is a future that is done when it has, or when it exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from typing import Callable

from runtime.lifeline import PR_SET_PDEATHSIG
from runtime.spec import PARENT_ENV, READY_FD_ENV, SPEC_ENV, ChildSpec

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork


def _die_with(parent_pid: int) -> Callable[[], None]:
    """Runs in the forked child before exec: as little as possible, no allocation-heavy work."""

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def start(module: str, spec: ChildSpec) -> tuple[subprocess.Popen, int]:
    """Start `python -m module` as a child of this process (stdout and stderr inherited);
    returns it and the read end of its readiness pipe."""
    parent_pid = os.getpid()
    ready_read, ready_write = os.pipe()
    env = dict(os.environ, **{SPEC_ENV: spec.to_json(), PARENT_ENV: str(parent_pid),
                              READY_FD_ENV: str(ready_write)})
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, process_group=0,
            preexec_fn=_die_with(parent_pid), pass_fds=(ready_write,),
        )
    except BaseException:
        os.close(ready_read)
        raise
    finally:
        os.close(ready_write)
    return process, ready_read


def watch_ready(ready_read: int) -> asyncio.Future[bool]:
    """A future: True once the child wrote to its readiness pipe, False if it closed it
    without a word (it exited, or never says ready). Closes the descriptor."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(ready_read)
        try:
            said = bool(os.read(ready_read, 64))
        except OSError:
            said = False
        os.close(ready_read)
        if not future.done():
            future.set_result(said)

    loop.add_reader(ready_read, readable)
    return future


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
