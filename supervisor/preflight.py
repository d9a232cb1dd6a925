"""What is checked before a system starts, beyond the config file's shape (supervisor.config):

- every child's module and settings, by the child's own settings class (runtime.check, run
  in a process of its own: the supervisor imports no child's code). Each child's check has
  `import_timeout` seconds ([supervisor], default 5): a module that does its work at import
  (a server loop at the top level) is named instead of hanging the check, and the checks of
  the children after it go on in a new process. That process is the leader of a process group
  of its own, killed when the check ends, so that nothing a module started at import (a
  server, a process) outlives it;
- no two listeners of the config share a TCP port (on one address, or on a wildcard one) or an
  ipc socket file: the endpoints of the bus line whose forwarder runs here (none, with
  [bus] forwarder = "none": the bus is elsewhere), the control socket, the Prometheus endpoint
  and what the children's settings listen on (runtime.check);
- before `tickmesh run` only, the machine: nobody may already hold the endpoints of the line
  whose forwarder runs here or the ports the children will listen on (a second system would
  otherwise knock the first off or quietly take its bus over); with CURVE, a forwarder this
  system starts needs the server's secret key; the Prometheus endpoint's port must be free.

Each problem names the file, the child (children[3] (polygon)) and the key.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, NamedTuple

from tickmesh.bus.sockets import key_file_problem, owner_problem
from tickmesh.runtime.check import tcp_endpoint
from tickmesh.supervisor.config import Config, ConfigError

STARTUP_TIMEOUT = 60.0
"""For the checking process to start (its own imports, before any child's module)."""
WILDCARDS = ("", "*", "0.0.0.0", "::")  # a listener there takes the port on every address
LOOPBACK = ("127.0.0.1", "::1")  # where a listener on "localhost" may be


class Checked(NamedTuple):
    listens: list[list[str]]
    """[key, endpoint] of each address a child will listen on (runtime.check)."""
    variables: dict[str, list[str]]
    """Per child name, the environment variables its settings name (runtime.check)."""


def check_children(config: Config) -> Checked:
    """Raise ConfigError listing every child whose module or settings are wrong and every
    listener whose port another one has; else what the children's settings say about the
    machine."""
    children = [{"where": f"children[{index}] ({child.name})", "run": child.run,
                 "settings": child.settings} for index, child in enumerate(config.children)]
    problems: list[str] = []
    listens: list[list[str]] = []
    variables: dict[str, list[str]] = {}
    for child, answer in zip(config.children, _answers(config, children)):
        problems += answer["problems"]
        listens += answer["listens"]
        variables[child.name] = answer["variables"]
    problems += collisions(_own_listens(config) + listens)
    if problems:
        raise ConfigError(config.path, problems)
    return Checked(listens, variables)


# --- checking the children's modules and settings, each within import_timeout --------------

def _answers(config: Config, children: list[dict]) -> list[dict]:
    """runtime.check's answer for each child; one whose check did not end in time, or ended
    its process, gets its problem, and the next are checked in a new process."""
    answers: list[dict] = []
    while len(answers) < len(children):
        answers += _check(config, children[len(answers):])
    return answers


def _check(config: Config, children: list[dict]) -> list[dict]:
    """Answers for `children` from one checking process: for all of them, or up to the first
    whose check did not end (its answer, then, is the problem)."""
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen([sys.executable, "-m", "tickmesh.runtime.check"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=errors,
                              start_new_session=True) as checker:
            try:
                return _read(config, checker, children, errors)
            finally:
                _kill_group(checker.pid)


def _read(config: Config, checker: subprocess.Popen, children: list[dict],
          errors: IO[bytes]) -> list[dict]:
    with contextlib.suppress(BrokenPipeError):  # it died at once: its stderr says why
        checker.stdin.write(json.dumps(children).encode())
        checker.stdin.close()
    lines = _Lines(checker.stdout)
    _wait_ready(config, lines, errors)
    answers = []
    for child in children:
        where, run = child["where"], child["run"]
        try:
            line = lines.next(config.import_timeout)
        except TimeoutError:
            return [*answers, _problem(
                f"{where}.run: importing {run} did not finish within {config.import_timeout:g} "
                "s (supervisor.import_timeout): does it do its work at import instead of in "
                "main()?")]
        if line is None:
            last = (_text(errors).splitlines() or ["it wrote nothing on stderr"])[-1]
            return [*answers, _problem(f"{where}.run: {run} exited while it was imported or "
                                       f"checked: {last}")]
        answers.append(json.loads(line))
    return answers


def _wait_ready(config: Config, lines: _Lines, errors: IO[bytes]) -> None:
    """Wait until the checking process has started; raise ConfigError if it does not."""
    try:
        ready = lines.next(STARTUP_TIMEOUT)
    except TimeoutError:
        raise ConfigError(config.path, [f"the children could not be checked within "
                                        f"{STARTUP_TIMEOUT:g} s"]) from None
    if ready is None:
        raise ConfigError(config.path, [f"the children could not be checked: {_text(errors)}"])


def _problem(text: str) -> dict[str, Any]:
    return {"problems": [text], "listens": [], "variables": []}


class _Lines:
    """The lines of a pipe, each awaited with a deadline."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.fd = pipe.fileno()
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        self.buffer = b""

    def next(self, timeout: float) -> bytes | None:
        """The next line; None at the end of the pipe; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller.poll(math.ceil(left * 1000)):
                raise TimeoutError
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _kill_group(pid: int) -> None:
    """SIGKILL the process group `pid` leads (not reaped yet: the group cannot be another's)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _text(file: IO[bytes]) -> str:
    file.seek(0)
    return file.read().decode(errors="replace").strip()


# --- listeners -----------------------------------------------------------------------------

def _forwarder_listens(config: Config) -> list[list[str]]:
    """[key, endpoint] of what this host's forwarder listens on (none if it runs none)."""
    line = config.bus.served_line
    if line is None:
        return []
    suffix = "" if line.name == "A" else "_b"
    return [[f"bus.publish{suffix}", line.publish], [f"bus.subscribe{suffix}", line.subscribe]]


def _own_listens(config: Config) -> list[list[str]]:
    """[key, endpoint] of what the supervisor and the forwarder listen on."""
    found = [*_forwarder_listens(config), ["supervisor.control", config.control]]
    if config.metrics:
        host, port = config.metrics
        found.append(["supervisor.metrics", tcp_endpoint(host, port)])
    return found


def collisions(listens: list[list[str]]) -> list[str]:
    """A problem for each listener ([key, endpoint]) whose port or ipc socket file one listed
    before it has too, naming both."""
    problems = []
    for at, (key, endpoint) in enumerate(listens):
        other = next((other for other, taken in listens[:at] if _collide(endpoint, taken)), None)
        if other is None:
            continue
        scheme, _, address = endpoint.partition("://")
        shown, what = (address, "port") if scheme == "tcp" else (endpoint, "socket file")
        problems.append(f"{key}: {shown} is also where {other} listens: each listener needs a "
                        f"{what} of its own")
    return problems


def _collide(one: str, other: str) -> bool:
    if one.startswith("ipc://") and other.startswith("ipc://"):
        return os.path.normpath(one[len("ipc://"):]) == os.path.normpath(other[len("ipc://"):])
    first, second = _tcp_address(one), _tcp_address(other)
    if first is None or second is None or first[1] != second[1] or first[1] == 0:
        return False
    hosts, others = _hosts(first[0]), _hosts(second[0])
    return hosts is None or others is None or bool(hosts & others)


def _hosts(host: str) -> set[str] | None:
    """The addresses a listener on `host` takes its port on; None: every one."""
    if host in WILDCARDS:
        return None
    return set(LOOPBACK) if host == "localhost" else {host}


def _tcp_address(endpoint: str) -> tuple[str, int] | None:
    """(host, port) of a tcp:// endpoint with a port number; None for any other."""
    scheme, _, address = endpoint.partition("://")
    host, _, port = address.rpartition(":")
    if scheme != "tcp" or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


# --- the machine ---------------------------------------------------------------------------

def check_machine(config: Config, listens: list[list[str]]) -> None:
    """Raise ConfigError if the endpoints of the line whose forwarder runs here, or a child's
    listening port, are held already."""
    problems = [f"{key}: {problem}" for key, endpoint in _forwarder_listens(config)
                if (problem := owner_problem(endpoint))]
    if (config.forwarder and config.bus.curve
            and (problem := key_file_problem(config.bus.server_key_file, secret=True))):
        problems.append(f"bus.server_key_file: {problem} (the forwarder runs here)")
    problems += [f"{key}: {problem}" for key, endpoint in listens
                 if (problem := _held(endpoint))]
    if config.metrics and not _bindable(*config.metrics):
        host, port = config.metrics
        problems.append(f"supervisor.metrics: {host}:{port} is in use (another system, or "
                        "another program): choose another port")
    if problems:
        raise ConfigError(config.path, problems)


def _held(endpoint: str) -> str:
    """Why a child cannot listen at `endpoint` ("" if it can, as far as can be told)."""
    if endpoint.startswith("ipc://"):
        return owner_problem(endpoint)
    address = _tcp_address(endpoint)
    if address is None or address[1] == 0 or _bindable(*address):
        return ""
    return f"{endpoint.partition('://')[2]} is in use (another system, or another program)"


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("" if host == "*" else host, port))
        except OSError:
            return False
    return True
