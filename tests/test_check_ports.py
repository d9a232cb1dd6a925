"""Two listeners of one config on one port (or one ipc socket file): `tickmesh check` and
`tickmesh run` refuse it, naming both."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.supervised import child_toml, tickmesh, write_config

ALPACA_SIM = "tickmesh.handlers.alpaca.sim.server"
POLYGON_SIM = "tickmesh.handlers.polygon.sim.server"
BOOKS = "tickmesh.consumers.books"
RECORDER = "tickmesh.consumers.recorder"


def _sim(name: str, port: int, host: str = "127.0.0.1", run: str = ALPACA_SIM) -> str:
    return child_toml(name, run, {"host": host, "port": port})


def _problems(spawn, run_dir: Path, *tables: str, command: str = "check") -> list[str]:
    """The problems `tickmesh COMMAND` finds in a config of `tables` (it must find some)."""
    config = write_config(run_dir, *tables)
    result = tickmesh(spawn, run_dir, command, str(config))
    assert result.code == 2 and result.out == "", result
    prefix = f"tickmesh: {config}: "
    lines = result.err.splitlines()
    return [line.removeprefix(prefix).removeprefix(f"{config}: ") for line in lines if line]


def test_two_simulators_on_one_port(spawn, run_dir):
    port = free_port()
    found = _problems(spawn, run_dir, _sim("alpaca-sim", port),
                      _sim("polygon-sim", port, run=POLYGON_SIM))
    assert found == [f"children[1] (polygon-sim).settings.port: 127.0.0.1:{port} is also where "
                     f"children[0] (alpaca-sim).settings.port listens: each listener needs a "
                     "port of its own"]


def test_a_simulator_on_the_metrics_port(spawn, run_dir):
    port = free_port()
    found = _problems(spawn, run_dir, f'[supervisor]\nmetrics = "127.0.0.1:{port}"\n',
                      _sim("alpaca-sim", port))
    assert found == [f"children[0] (alpaca-sim).settings.port: 127.0.0.1:{port} is also where "
                     "supervisor.metrics listens: each listener needs a port of its own"]


def test_a_wildcard_host_takes_the_port_on_every_address(spawn, run_dir):
    port = free_port()
    found = _problems(spawn, run_dir, _sim("alpaca-sim", port, host="0.0.0.0"),
                      _sim("polygon-sim", port, run=POLYGON_SIM))
    assert found[0].startswith(f"children[1] (polygon-sim).settings.port: 127.0.0.1:{port} is "
                               "also where children[0] (alpaca-sim).settings.port listens")


def test_the_bus_and_the_services_of_consumers_are_listeners_too(spawn, run_dir):
    port, other = free_port(), free_port()
    bus = f'[bus]\npublish = "tcp://127.0.0.1:{port}"\nsubscribe = "tcp://127.0.0.1:{other}"\n'
    found = _problems(
        spawn, run_dir, bus, f'[supervisor]\nmetrics = "127.0.0.1:{other}"\n',
        child_toml("books", BOOKS, {"snapshot_endpoint": f"tcp://127.0.0.1:{port}"}),
        child_toml("recorder", RECORDER, {"directory": str(run_dir / "rec"),
                                           "gapfill_endpoint": f"ipc://{run_dir}/subscribe"}),
        child_toml("again", RECORDER, {"directory": str(run_dir / "rec2"),
                                        "gapfill_endpoint": f"ipc://{run_dir}//subscribe"}),
    )
    assert found == [
        f"supervisor.metrics: 127.0.0.1:{other} is also where bus.subscribe listens: each "
        "listener needs a port of its own",
        f"children[0] (books).settings.snapshot_endpoint: 127.0.0.1:{port} is also where "
        "bus.publish listens: each listener needs a port of its own",
        f"children[2] (again).settings.gapfill_endpoint: ipc://{run_dir}//subscribe is also "
        "where children[1] (recorder).settings.gapfill_endpoint listens: each listener needs "
        "a socket file of its own",
    ]


def test_run_refuses_a_port_taken_twice_before_starting_anything(spawn, run_dir):
    port = free_port()
    found = _problems(spawn, run_dir, _sim("alpaca-sim", port), _sim("polygon-sim", port,
                                                                      run=POLYGON_SIM),
                      command="run")
    assert len(found) == 1 and "is also where children[0] (alpaca-sim)" in found[0]
    assert not (run_dir / "publish").exists()


def test_listeners_apart_pass(spawn, run_dir):
    port = free_port()
    config = write_config(run_dir, _sim("alpaca-sim", port),
                          _sim("polygon-sim", port, host="127.0.0.2", run=POLYGON_SIM),
                          _sim("any-a", 0), _sim("any-b", 0, run=POLYGON_SIM))
    result = tickmesh(spawn, run_dir, "check", str(config))
    assert result.code == 0 and result.out.startswith("ok: "), result
