"""Starting a child process that cannot outlive the supervisor, nor leave anything behind, and
learning when it exits.

A child is `python -m <module>` with its spec in TICKMESH_CHILD, run under a keeper
(runtime.keeper: a child subreaper that kills whatever the child leaves behind, when the child
exits and when the supervisor dies), in the keeper's own process group (so a terminal's Ctrl-C
reaches only the supervisor, which then stops the children in order). The supervisor starts,
signals (SIGTERM; `kill`) and waits for the keeper, which relays all of it; the child's own pid
comes on a pipe (`watch_pid`). Between fork and exec the keeper asks the kernel for SIGTERM
when the supervisor dies (PR_SET_PDEATHSIG), which it catches to kill the child and the rest;
the child itself gets SIGKILL when the keeper dies, even one that never calls
runtime.lifeline.exit_with_parent. Linux only.

Its environment is the supervisor's cut down to what a process needs and the variables its own
settings name, defaults included (`child_environment`; supervisor.preflight finds them): one
child never sees another's secrets.

The child gets the write end of a pipe in TICKMESH_READY_FD, to say "ready" on
(runtime.readiness); `watch_ready` is a future that is done when it has, or when it exits.

Its stdout and stderr are pipes of its own, which the supervisor reads (supervisor.output):
children never write to the same file, so their lines cannot run together.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from typing import Callable, Iterable

from tickmesh.runtime import keeper
from tickmesh.runtime.lifeline import PR_SET_PDEATHSIG
from tickmesh.runtime.spec import PARENT_ENV, READY_FD_ENV, SPEC_ENV, ChildSpec

_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork


def _die_with(parent_pid: int) -> Callable[[], None]:
    """Runs in the forked child before exec: as little as possible, no allocation-heavy work."""

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # the keeper catches it
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


RUNTIME_VARIABLES = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ",
                     "TERM", "TMPDIR", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SSL_CERT_FILE",
                     "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                     "https_proxy", "no_proxy"}
RUNTIME_PREFIXES = ("LC_", "PYTHON", "TICKMESH_")


def child_environment(variables: Iterable[str]) -> dict[str, str]:
    """What of the supervisor's environment a child gets: what any process needs to run
    (RUNTIME_VARIABLES, and names starting with RUNTIME_PREFIXES), and `variables`, those its
    own settings name in fields ending in `_env`, defaults included (its secrets). Nothing
    else: no other child's secrets."""
    named = set(variables)
    return {name: value for name, value in os.environ.items()
            if name in RUNTIME_VARIABLES or name.startswith(RUNTIME_PREFIXES) or name in named}


def start(module: str, spec: ChildSpec, variables: Iterable[str] = ()
          ) -> tuple[subprocess.Popen, int, int, tuple[int, int]]:
    """Start `python -m module` under a keeper, a child of this process; returns the keeper,
    the read end of the child's readiness pipe, that of the pipe the keeper writes the child's
    pid on, and those of its stdout and stderr."""
    parent_pid = os.getpid()
    ready_read, ready_write = os.pipe()
    pid_read, pid_write = os.pipe()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    env = dict(child_environment(variables), **{
        SPEC_ENV: spec.to_json(), PARENT_ENV: str(parent_pid), READY_FD_ENV: str(ready_write)})
    try:
        process = subprocess.Popen(
            keeper.command(parent_pid, pid_write, [sys.executable, "-m", module]), env=env,
            process_group=0, preexec_fn=_die_with(parent_pid), pass_fds=(ready_write, pid_write),
            stdout=out_write, stderr=err_write,
        )
    except BaseException:
        for fd in (ready_read, pid_read, out_read, err_read):
            os.close(fd)
        raise
    finally:
        for fd in (ready_write, pid_write, out_write, err_write):
            os.close(fd)
    return process, ready_read, pid_read, (out_read, err_read)


def kill(process: subprocess.Popen) -> None:
    """Have the keeper kill its child (SIGKILL); its exit follows."""
    process.send_signal(keeper.KILL)


def watch_pid(pid_read: int) -> asyncio.Future[int | None]:
    """A future: the child's pid once the keeper has written it, None if the keeper closed the
    pipe without it (it exited first). Closes the descriptor."""
    said = _read_once(pid_read)
    pid: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    said.add_done_callback(lambda done: pid.set_result(
        int(done.result()) if done.result().strip().isdigit() else None))
    return pid


def watch_ready(ready_read: int) -> asyncio.Future[bool]:
    """A future: True once the child wrote to its readiness pipe, False if it closed it
    without a word (it exited, or never says ready). Closes the descriptor."""
    said = _read_once(ready_read)
    ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    said.add_done_callback(lambda done: ready.set_result(bool(done.result())))
    return ready


def _read_once(fd: int) -> asyncio.Future[bytes]:
    """A future: the first bytes that can be read from the pipe `fd` (b"" once it is closed
    without any). Closes the descriptor."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        loop.remove_reader(fd)
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        os.close(fd)
        if not future.done():
            future.set_result(data)

    loop.add_reader(fd, readable)
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
