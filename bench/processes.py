"""The processes of a benchmark: each in its own process group, its stderr in a log file of a
temporary run directory, and all of them killed when the benchmark ends, however it ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.spec import PARENT_ENV, SPEC_ENV, ChildSpec

REPO = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 3.0
LOG_TAIL_LINES = 5


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it is true; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


class Processes:
    """Use as a context manager: on exit every process started is killed and the run directory
    removed (after printing the tail of each log, if the benchmark failed with an error)."""

    def __init__(self) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="tm-bench-", dir="/tmp"))
        self.bus = BusConfig(f"ipc://{self.run_dir}/publish", f"ipc://{self.run_dir}/subscribe")
        self._started: list[subprocess.Popen] = []

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        for proc in reversed(list(self._started)):
            self.stop(proc)
        if exc_type is not None and issubclass(exc_type, Exception):
            self._print_logs()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              talk: bool = False) -> subprocess.Popen:
        """Start argv in a new process group, stderr to <run_dir>/<name>.log; with `talk`,
        its stdin and stdout are pipes (text), else stdout goes to the log too."""
        with open(self.run_dir / f"{name}.log", "ab") as log:
            stdin, stdout = (subprocess.PIPE,) * 2 if talk else (subprocess.DEVNULL, log)
            proc = subprocess.Popen(
                argv, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                stdin=stdin, stdout=stdout, stderr=log, text=talk, start_new_session=True)
        self._started.append(proc)
        return proc

    def child(self, module: str, name: str, settings: dict,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        """A tickmesh child module on this benchmark's bus, started as the supervisor would."""
        spec = ChildSpec(name, settings, self.bus)
        child_env = {SPEC_ENV: spec.to_json(), PARENT_ENV: str(os.getpid()), **(env or {})}
        return self.start(name, [sys.executable, "-m", module], child_env)

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM the process group, SIGKILL what is left after a grace period, reap."""
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        self._started.remove(proc)

    def _print_logs(self) -> None:
        for log in sorted(self.run_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            if lines:
                print(f"--- {log.name} (last lines)", *lines, sep="\n", file=sys.stderr)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
