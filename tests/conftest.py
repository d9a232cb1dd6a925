"""Shared fixtures: short ipc run directories, free ports, real processes that never outlive
their test (each started in its own process group, and the whole group killed at teardown)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.spec import PARENT_ENV, SPEC_ENV, ChildSpec
from tests.buslog import BusLog

REPO = Path(__file__).resolve().parent.parent

# No per-example deadline (a loaded 2-core CI machine is slow, not wrong); in CI the examples are
# derandomized so that a run is reproducible.
hypothesis_settings.register_profile("tickmesh", deadline=None, derandomize=bool(os.environ.get("CI")))
hypothesis_settings.load_profile("tickmesh")


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM the process group, wait a little, then SIGKILL whatever is left of it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A short directory for ipc:// endpoints (their paths must stay under ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="tm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bus_endpoints(run_dir: Path) -> BusConfig:
    return BusConfig(f"ipc://{run_dir}/publish", f"ipc://{run_dir}/subscribe")


@pytest.fixture
def spawn() -> Iterator:
    """spawn(argv, env=..., **popen_kwargs) -> Popen, in a new process group killed at teardown."""
    started: list[subprocess.Popen] = []

    def _spawn(argv: list[str], env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        kwargs.setdefault("cwd", REPO)
        proc = subprocess.Popen(argv, env=full_env, start_new_session=True, **kwargs)
        started.append(proc)
        return proc

    yield _spawn
    for proc in reversed(started):
        kill_group(proc)


@pytest.fixture
def spawn_child(spawn, bus_endpoints: BusConfig):
    """spawn_child(module, name, settings) -> Popen: a tickmesh child module, as the supervisor
    would start it, on this test's bus."""

    def _spawn_child(module: str, name: str, settings: dict | None = None,
                     bus: BusConfig | None = None, **kwargs):
        spec = ChildSpec(name, settings or {}, bus or bus_endpoints)
        env = {SPEC_ENV: spec.to_json(), PARENT_ENV: str(os.getpid())}
        return spawn([sys.executable, "-m", module], env=env, **kwargs)

    return _spawn_child


def wait_for_forwarder(endpoints: BusConfig) -> None:
    """Wait until a forwarder has bound both ipc endpoints."""
    from tests.waiting import wait_until

    for endpoint in (endpoints.publish, endpoints.subscribe):
        path = Path(endpoint[len("ipc://"):])
        wait_until(path.exists, timeout=10, what=f"forwarder to bind {endpoint}")


@pytest.fixture
def forwarder(spawn_child, bus_endpoints: BusConfig) -> BusConfig:
    """A running forwarder on this test's bus; returns its endpoints once both are bound."""
    spawn_child("tickmesh.runtime.forwarder", "forwarder")
    wait_for_forwarder(bus_endpoints)
    return bus_endpoints


@pytest.fixture
def bus(request: pytest.FixtureRequest, forwarder: BusConfig) -> Iterator[BusLog]:
    """A BusLog on this test's running forwarder, subscribed to the test module's BUS_PATTERNS
    (a list of topic patterns, e.g. ["trade.alpaca", "status.alpaca"]); closed at teardown."""
    patterns = getattr(request.module, "BUS_PATTERNS", None)
    if patterns is None:
        raise pytest.UsageError(
            f"{request.module.__name__} uses the bus fixture without BUS_PATTERNS")
    with BusLog(forwarder.subscribe, list(patterns)) as log:
        yield log


FAST_RECONNECT = {"backoff_min": 0.05, "backoff_max": 0.5}
"""A handler's waits between connection attempts, short enough for a test."""
SIMULATOR_ADDRESS: dict[str, Callable[[int], dict[str, Any]]] = {
    "alpaca": lambda port: {"url": f"ws://127.0.0.1:{port}/v2/iex"},
    "binance": lambda port: {"url": f"ws://127.0.0.1:{port}/stream",
                             "rest_url": f"http://127.0.0.1:{port}"},
    "coinbase": lambda port: {"url": f"ws://127.0.0.1:{port}"},
    "ib": lambda port: {"port": port},
    "kraken": lambda port: {"url": f"ws://127.0.0.1:{port}"},
    "polygon": lambda port: {"url": f"ws://127.0.0.1:{port}/stocks"},
}
"""The settings that point a provider's handler at that provider's simulator on a loopback port."""


@pytest.fixture
def start_handler(request: pytest.FixtureRequest, spawn_child) -> Callable[..., subprocess.Popen]:
    """start_handler(provider, port=None, *, name=None, bus=None, log=None, **settings) -> Popen:
    tickmesh.handlers.<provider>.handler as the child `name` (else `provider`) on this test's bus
    (or `bus`), its process group killed at teardown, its stderr to the file `log` if given.

    Its settings, each over the ones before: FAST_RECONNECT; the address of the provider's
    simulator on loopback `port` (SIMULATOR_ADDRESS), if given; the test module's
    HANDLER_SETTINGS (a dict), if it has one; `settings`."""
    module_settings = getattr(request.module, "HANDLER_SETTINGS", {})

    def _start_handler(provider: str, port: int | None = None, *, name: str | None = None,
                       bus: BusConfig | None = None, log: Path | None = None,
                       **settings: Any) -> subprocess.Popen:
        address = SIMULATOR_ADDRESS[provider](port) if port is not None else {}
        config = {**FAST_RECONNECT, **address, **module_settings, **settings}
        module = f"tickmesh.handlers.{provider}.handler"
        if log is None:
            return spawn_child(module, name or provider, config, bus=bus)
        with open(log, "w") as stderr:
            return spawn_child(module, name or provider, config, bus=bus, stderr=stderr)

    return _start_handler


@pytest.fixture
def free_tcp_endpoints(spawn) -> tuple[str, str]:
    """A forwarder bound on two loopback TCP ports: (publish, subscribe)."""
    endpoints = BusConfig(f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    env = {SPEC_ENV: ChildSpec("forwarder", {}, endpoints).to_json(), PARENT_ENV: str(os.getpid())}
    spawn([sys.executable, "-m", "tickmesh.runtime.forwarder"], env=env)
    return endpoints.publish, endpoints.subscribe
