"""Across machines (issue 19), two hosts played by two supervisors on one machine, each with a
run dir of its own, on one bus over loopback TCP: host 1 runs only the forwarder (line A),
host 2 runs no forwarder ([bus] forwarder = "none") but a simulator, its handler and a tail.
Events flow from host 2 through host 1's forwarder; `tickmesh status` on each host lists only
that host's processes, and the line with its reachability. Started with no forwarder there
yet, host 2 runs its children, says line A is unreachable, and catches up, with nobody doing
anything, once host 1 comes. With lines A and B, each forwarder on a host of its own, the
handlers' host finds both up; once line B's host stops, B is unreachable and events go on
flowing on A."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Callable

import pytest

from tickmesh.bus import Subscriber
from tests.conftest import free_port
from tests.supervised import Running, child_toml, tickmesh, write_config
from tests.test_prometheus import scrape, value
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

HOST_2_CHILDREN = ["alpaca-sim", "alpaca", "tail"]


def bus_toml(publish: int, subscribe: int, name: str, forwarder: str = "A",
             metrics: int | None = None) -> str:
    return (f'[bus]\npublish = "tcp://127.0.0.1:{publish}"\n'
            f'subscribe = "tcp://127.0.0.1:{subscribe}"\nforwarder = "{forwarder}"\n'
            f'[supervisor]\nname = "{name}"\n'
            + (f'metrics = "127.0.0.1:{metrics}"\n' if metrics else ""))


def host_1(machine: Path, ports: tuple[int, int]) -> tuple[Path, Path]:
    """(run dir, config) of a forwarder-only host, in the directory `machine`."""
    run_dir = _run_dir(machine, "h1")
    return run_dir, write_config(run_dir, bus_toml(*ports, "host-1"))


def host_2(machine: Path, ports: tuple[int, int],
           metrics: int | None = None) -> tuple[Path, Path]:
    """(run dir, config) of a host of handlers, with no forwarder, in the directory `machine`;
    its Prometheus endpoint on loopback port `metrics`, if given."""
    run_dir = _run_dir(machine, "h2")
    return run_dir, write_config(
        run_dir, bus_toml(*ports, "host-2", forwarder="none", metrics=metrics),
        *handler_children())


def handler_children() -> tuple[str, ...]:
    """HOST_2_CHILDREN: a simulator, its handler and a tail of the handler's trades."""
    sim = free_port()
    return (child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                       {"host": "127.0.0.1", "port": sim, "rate": 50, "symbols": ["AAPL"]}),
            child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                       {"url": f"ws://127.0.0.1:{sim}/v2/iex", "symbols": ["AAPL"],
                        "backoff_min": 0.05, "backoff_max": 0.5},
                       after=["alpaca-sim"], shutdown_timeout=1.0),
            child_toml("tail", "tickmesh.consumers.tail", {"patterns": ["trade.alpaca"]}))


def _run_dir(machine: Path, name: str) -> Path:
    path = machine / name
    path.mkdir()
    return path


def status(spawn: Callable, run_dir: Path) -> dict[str, Any]:
    """`tickmesh status --json` on the host of `run_dir` (its system.json finds it)."""
    answer = tickmesh(spawn, run_dir, "status", "--json")
    assert answer.code == 0, answer.err
    return json.loads(answer.out)


def line_a(answer: dict[str, Any]) -> dict[str, Any]:
    [line] = answer["bus"]["lines"]
    assert line["line"] == "A"
    return line


def received(host: Running, name: str) -> int:
    """What host's child `name` has counted received or published, as the bus shows it."""
    health = ((host.status() or {"children": {}})["children"].get(name) or {}).get("health")
    if not health:
        return 0
    return max(health["events_received"] or 0, health["events_published"])


def flowing(host: Running) -> bool:
    """The handler publishes and the tail receives, as host's supervisor sees on the bus."""
    return received(host, "alpaca") > 0 and received(host, "tail") > 0


def trades_through(subscribe: int) -> Any:
    """A trade of host 2's handler, read at host 1's forwarder (a third host, say)."""
    with Subscriber(f"tcp://127.0.0.1:{subscribe}", ["trade.alpaca"]) as sub:
        return sub.recv(timeout=10)


def test_a_host_without_a_forwarder_publishes_through_another_hosts(spawn, run_dir):
    ports = (free_port(), free_port())
    run_1, config_1 = host_1(run_dir, ports)
    run_2, config_2 = host_2(run_dir, ports)
    first = Running(spawn, run_1, config_1)
    first.wait_for("forwarder", "running")
    second = Running(spawn, run_2, config_2)
    second.wait_all_running(timeout=20)

    wait_until(lambda: flowing(second), timeout=20,
               what="host 2's handler publishing and its tail receiving")
    trade = trades_through(ports[1])
    assert trade is not None and trade.provider == "alpaca" and trade.symbol == "AAPL"

    one, two = status(spawn, run_1), status(spawn, run_2)
    assert list(one["children"]) == ["forwarder"]  # its own processes only
    assert list(two["children"]) == HOST_2_CHILDREN
    assert (one["supervisor"]["name"], two["supervisor"]["name"]) == ("host-1", "host-2")
    assert (one["bus"]["forwarder"], two["bus"]["forwarder"]) == ("A", "none")
    wait_until(lambda: line_a(status(spawn, run_1))["state"] == "up", timeout=10,
               what="host 1 to find line A up")
    line = line_a(two)
    assert line == {**line, "state": "up", "forwarder_here": False,
                    "publish": f"tcp://127.0.0.1:{ports[0]}",
                    "subscribe": f"tcp://127.0.0.1:{ports[1]}"}
    assert line["own_heartbeat_age"] < 3 and line_a(one)["forwarder_here"] is True
    # host 1's forwarder carries host 2's events
    forwarder = one["children"]["forwarder"]["health"]
    assert forwarder["events_published"] > 0

    table = tickmesh(spawn, run_2, "status").out
    rows = [line.split()[0] for line in table.split("\n\n")[1].splitlines()[1:]]
    assert rows == ["host-2", *HOST_2_CHILDREN]
    bus = table.split("\n\n")[-1].splitlines()
    assert bus[0].split() == ["line", "state", "forwarder", "heard_own", "heard_any", "publish",
                              "subscribe"]
    row = bus[1].split()
    assert row[:3] == ["A", "up", "elsewhere"] and row[4] == row[6] == "ago"
    assert row[-2:] == [f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}"]


def line_up(metrics: int) -> float | None:
    """tickmesh_bus_line_up{line="A"} at the Prometheus endpoint on port `metrics`."""
    samples = scrape(metrics)
    return None if samples is None else value(samples, "tickmesh_bus_line_up", line="A")


def test_without_its_forwarder_a_host_runs_and_catches_up_when_it_comes(spawn, run_dir):
    ports, metrics = (free_port(), free_port()), free_port()
    run_1, config_1 = host_1(run_dir, ports)
    run_2, config_2 = host_2(run_dir, ports, metrics)
    second = Running(spawn, run_2, config_2)
    second.wait_all_running(timeout=20)  # nothing waits for a forwarder that is not there

    line = line_a(status(spawn, run_2))
    assert (line["state"], line["own_heartbeat_age"], line["heartbeat_age"]) == (
        "unreachable", None, None)
    table = tickmesh(spawn, run_2, "status").out
    assert table.split("\n\n")[-1].splitlines()[1].split()[:5] == [
        "A", "unreachable", "elsewhere", "never", "never"]
    assert not flowing(second)  # its supervisor sees nothing: the bus is not there
    assert line_up(metrics) == 0.0

    Running(spawn, run_1, config_1)  # the forwarder comes; nobody touches host 2
    wait_until(lambda: line_a(status(spawn, run_2))["state"] == "up", timeout=20,
               what="host 2 to find line A up")
    wait_until(lambda: flowing(second), timeout=20,
               what="host 2's handler publishing and its tail receiving")
    trade = trades_through(ports[1])
    assert trade is not None and trade.provider == "alpaca"
    assert line_up(metrics) == 1.0
    assert all(child["restarts"] == 0 for child in status(spawn, run_2)["children"].values())


# --- lines A and B, each forwarder on a host of its own -------------------------------------

def two_lines_toml(ports: tuple[int, int, int, int], name: str, forwarder: str) -> str:
    a_pub, a_sub, b_pub, b_sub = ports
    return (f'[bus]\npublish = "tcp://127.0.0.1:{a_pub}"\nsubscribe = "tcp://127.0.0.1:{a_sub}"\n'
            f'publish_b = "tcp://127.0.0.1:{b_pub}"\nsubscribe_b = "tcp://127.0.0.1:{b_sub}"\n'
            f'forwarder = "{forwarder}"\n[supervisor]\nname = "{name}"\n')


def states(spawn: Callable, run_dir: Path) -> dict[str, tuple[str, bool]]:
    """Each line's (state, forwarder_here) in the status of the host of `run_dir`."""
    return {line["line"]: (line["state"], line["forwarder_here"])
            for line in status(spawn, run_dir)["bus"]["lines"]}


def test_two_lines_on_two_hosts_and_one_goes(spawn, run_dir):
    ports = tuple(free_port() for _ in range(4))
    hosts = {name: _run_dir(run_dir, name) for name in ("h1", "h2", "h3")}
    line_a = write_config(hosts["h1"], two_lines_toml(ports, "host-1", "A"))
    line_b = write_config(hosts["h3"], two_lines_toml(ports, "host-3", "B"))
    handlers = write_config(hosts["h2"], two_lines_toml(ports, "host-2", "none"),
                            *handler_children())
    Running(spawn, hosts["h1"], line_a)
    third = Running(spawn, hosts["h3"], line_b)
    third.wait_for("forwarder-b", "running")
    second = Running(spawn, hosts["h2"], handlers)
    second.wait_all_running(timeout=20)

    wait_until(lambda: states(spawn, hosts["h2"]) == {"A": ("up", False), "B": ("up", False)},
               timeout=20, what="host 2 to find both lines up")
    wait_until(lambda: flowing(second), timeout=20, what="events flowing on host 2")
    assert list(status(spawn, hosts["h3"])["children"]) == ["forwarder-b"]
    wait_until(lambda: states(spawn, hosts["h3"]) == {"A": ("up", False), "B": ("up", True)},
               timeout=10, what="host 3 to find both lines up, B its own")

    assert tickmesh(spawn, hosts["h3"], "stop").code == 0  # host 3 goes, and line B with it
    third.process.wait(timeout=10)
    wait_until(lambda: states(spawn, hosts["h2"]) == {"A": ("up", False),
                                                      "B": ("unreachable", False)},
               timeout=20, what="host 2 to find line B unreachable, line A up")
    before = received(second, "tail")
    wait_until(lambda: received(second, "tail") > before + 10, timeout=20,
               what="host 2's tail to go on receiving on line A alone")


# --- the control path is per host, whatever the bus -----------------------------------------

def test_a_host_without_a_forwarder_stops_reloads_and_is_refused_as_any(spawn, run_dir):
    """No forwarder among its children: stop, start and reload act on its children alone, and
    a forwarder it does not run is an unknown child."""
    ticker = "tests.children.ticker"
    bus = bus_toml(free_port(), free_port(), "host-2", forwarder="none")
    config = write_config(run_dir, bus, child_toml("ticker", ticker))
    host = Running(spawn, run_dir, config)
    host.wait_all_running()

    refused = tickmesh(spawn, run_dir, "stop", "forwarder")
    assert refused.code == 2 and "unknown child 'forwarder'; children: ticker" in refused.err
    assert tickmesh(spawn, run_dir, "stop", "ticker").code == 0
    assert tickmesh(spawn, run_dir, "start", "ticker").code == 0
    write_config(run_dir, bus, child_toml("ticker", ticker), child_toml("newer", ticker))
    reload = tickmesh(spawn, run_dir, "reload", "--json")
    assert reload.code == 0, reload.err
    assert json.loads(reload.out)["added"] == ["newer"]
    assert list(host.wait_all_running()["children"]) == ["ticker", "newer"]


def test_run_checks_only_the_endpoints_of_the_line_it_serves(spawn, run_dir):
    """Line A held by another host's forwarder is where this one connects, not a conflict;
    line B, whose forwarder runs here, must be free."""
    with socket.socket() as line_a, socket.socket() as line_b:
        for taken in (line_a, line_b):
            taken.bind(("127.0.0.1", 0))
            taken.listen()
        a, b = line_a.getsockname()[1], line_b.getsockname()[1]
        config = write_config(run_dir, two_lines_toml((a, free_port(), b, free_port()),
                                                      "host-3", "B"))
        refused = tickmesh(spawn, run_dir, "run", str(config))
    assert refused.code == 1
    assert f"bus.publish_b: tcp://127.0.0.1:{b}: cannot be bound" in refused.err
    assert "bus.publish:" not in refused.err


def test_endpoints_names_each_line_and_where_its_forwarder_runs(spawn, run_dir):
    ports = (7001, 7002, 7101, 7102)  # not bound: endpoints reads the config only
    config = write_config(run_dir, two_lines_toml(ports, "host-3", "B"),
                          child_toml("ticker", "tests.children.ticker"))
    result = tickmesh(spawn, run_dir, "endpoints", str(config))
    assert result.code == 0, result.err
    rows = {line.split()[0]: line.split(None, 1)[1].split() for line in result.out.splitlines()}
    assert rows["publish"] == ["tcp://127.0.0.1:7001", "(line", "A)"]
    assert rows["subscribe_b"] == ["tcp://127.0.0.1:7102", "(line", "B,", "forwarder", "here)"]
    as_json = json.loads(tickmesh(spawn, run_dir, "endpoints", str(config), "--json").out)
    assert as_json["bus"] == {
        "publish": "tcp://127.0.0.1:7001", "subscribe": "tcp://127.0.0.1:7002",
        "publish_b": "tcp://127.0.0.1:7101", "subscribe_b": "tcp://127.0.0.1:7102",
        "forwarder": "B", "curve": False}
