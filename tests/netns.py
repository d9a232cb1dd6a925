"""Machines for tests: network namespaces of their own, as root, on one switch (a Linux bridge in
a namespace of its own), each with `lo` up and `eth0` on the switch at the address given.

    with Hosts({"fa": "10.201.0.1", "h1": "10.201.0.3"}) as hosts:   # skips if it cannot
        proc = hosts.start("h1", [python, "-m", "tickmesh", "run", "h1.toml"], env=...)
        hosts.cut("fa")       # fa's cable pulled at the switch; hosts.restore("fa") plugs it back
        hosts.get("h1", "http://127.0.0.1:18767/control/stats")   # a request made on h1

Every name is unique to the process that made it (its pid is in it), so parallel test runs never
meet. On the way out, even after a failure: every process started here is killed with its
process group, then whatever still runs in a namespace (ip netns pids), then every namespace is
deleted, and with them their veths and the bridge. Nothing outlives the `with`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

NETMASK = 24
TIMEOUT = 10.0
GET = ("import sys, urllib.request\n"
       "with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:\n"
       "    sys.stdout.write(answer.read().decode())\n")
"""What `Hosts.get` runs inside a host: one HTTP GET, its body on stdout."""


def unavailable() -> str:
    """Why namespaces cannot be made here ("" if they can, as far as can be told beforehand)."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns)"
    if shutil.which("ip") is None:
        return "needs iproute2 (the ip command) to make network namespaces"
    return ""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=TIMEOUT)


class Hosts:
    """Hosts by role, each a network namespace on the switch; a context manager."""

    def __init__(self, addresses: Mapping[str, str]) -> None:
        self.prefix = f"tm{os.getpid()}"
        self.switch = f"{self.prefix}-switch"
        self.addresses = dict(addresses)
        self.names = {role: f"{self.prefix}-{role}" for role in addresses}
        self.ports = {role: f"port{index}" for index, role in enumerate(addresses)}
        self._made: list[str] = []
        self._started: list[subprocess.Popen] = []

    def __enter__(self) -> "Hosts":
        reason = unavailable()
        if reason:
            pytest.skip(reason)
        try:
            self._add(self.switch)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"ip netns is not usable here: {exc.stderr.decode().strip()}")
        try:
            self._wire()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)

    def _wire(self) -> None:
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for role, address in self.addresses.items():
            host, port = self.names[role], self.ports[role]
            self._add(host)
            ip("link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", port,
               "netns", self.switch)
            ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            ip("-n", host, "addr", "add", f"{address}/{NETMASK}", "dev", "eth0")
            ip("-n", host, "link", "set", "eth0", "up")
            ip("-n", host, "link", "set", "lo", "up")

    # --- using them -------------------------------------------------------------------------

    def argv(self, role: str, argv: list[str]) -> list[str]:
        """`argv` as run on host `role`."""
        return ["ip", "netns", "exec", self.names[role], *argv]

    def start(self, role: str, argv: list[str], env: Mapping[str, str] | None = None,
              **popen: object) -> subprocess.Popen:
        """`argv` on host `role`, in a process group of its own, killed at the end."""
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        process = subprocess.Popen(self.argv(role, argv), env=full_env, start_new_session=True,
                                   **popen)
        self._started.append(process)
        return process

    def get(self, role: str, url: str) -> str:
        """The body of an HTTP GET of `url`, made on host `role` (its 127.0.0.1 is its own)."""
        done = subprocess.run(self.argv(role, [sys.executable, "-c", GET, url]),
                              capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, f"GET {url} on {role}: {done.stderr.strip()}"
        return done.stdout

    def cut(self, role: str) -> None:
        """Pull host `role`'s cable: its port on the switch goes down (its eth0 loses carrier)."""
        ip("-n", self.switch, "link", "set", self.ports[role], "down")

    def restore(self, role: str) -> None:
        ip("-n", self.switch, "link", "set", self.ports[role], "up")

    # --- the end ----------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every process started here (its group) and any left in a namespace, then delete
        every namespace, with its veths and the bridge."""
        for process in reversed(self._started):
            _kill_group(process)
        self._started.clear()
        for name in reversed(self._made):
            _kill_inside(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=TIMEOUT)
        self._made.clear()

    def left(self) -> list[str]:
        """The namespaces of this object that still exist (none after close)."""
        existing = set(os.listdir("/var/run/netns")) if Path("/var/run/netns").is_dir() else set()
        return sorted(existing & {self.switch, *self.names.values()})


def _kill_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM the process's group, wait `grace` s for it to exit, then SIGKILL the group."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if signum == signal.SIGTERM:  # the leader is gone: now the rest of its group
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return


def _kill_inside(namespace: str) -> None:
    """SIGKILL every process still running in `namespace` (what left its process group)."""
    found = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                           timeout=TIMEOUT)
    for pid in found.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
