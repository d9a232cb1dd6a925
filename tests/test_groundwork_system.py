"""The system as an operator meets it: `check` and `run` refuse every broken setting before
anything starts; children start only once what they wait for is ready; a second system on
the same machine fails clearly and leaves the first alone; `status` and `tail` work from any
directory. Real supervisors, real processes."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO, free_port
from tests.supervised import TICKMESH, Result, Running, child_toml, env, tickmesh, write_config

# fixed ports (the demo's, the metrics port): never two such tests at once (pytest -n)
pytestmark = pytest.mark.xdist_group("fixed_ports")

ALPACA_SIM = "tickmesh.handlers.alpaca.sim.server"
TICKER = "tests.children.ticker"


@pytest.mark.parametrize("child, expected", [
    (child_toml("polygon", "tickmesh.handlers.polygon.handler",
                {"symbols": ["AAPL"], "chanels": ["T"]}),
     "children[0] (polygon).settings.chanels: unknown key"),
    (child_toml("alpaca-sim", ALPACA_SIM, {"port": "18765"}),
     "children[0] (alpaca-sim).settings.port: expected an integer"),
    (child_toml("alpaca-sim", ALPACA_SIM, {"port": 99999}),
     "children[0] (alpaca-sim).settings.port: expected an integer from 0 to 65535"),
    (child_toml("alpaca", "tickmesh.handlers.alpaca.handler", {"symbols": "AAPL"}),
     "children[0] (alpaca).settings.symbols: expected a list"),
    (child_toml("tail", "consumers.tial"),
     "children[0] (tail).run: no module named 'consumers.tial'"),
    (child_toml("tail", "tickmesh.consumers.tail", {"patterns": ["trade.alpaca."]}),
     "children[0] (tail).settings.patterns: bad pattern 'trade.alpaca.'"),
])
def test_check_and_run_refuse_a_broken_child_and_start_nothing(spawn, run_dir, child, expected):
    config = write_config(run_dir, child)
    checked = tickmesh(spawn, run_dir, "check", str(config))
    assert checked.code == 2 and f"{config}: {expected}" in checked.err, checked.err
    ran = tickmesh(spawn, run_dir, "run", str(config))
    assert ran.code == 2 and expected in ran.err, ran.err
    assert not (run_dir / "publish").exists() and not (run_dir / "system.json").exists()


def test_a_child_waits_until_what_it_comes_after_is_ready(spawn, run_dir):
    port = free_port()
    config = write_config(
        run_dir,
        child_toml("slow", "tests.children.slow_listener", {"port": port, "delay": 1.0}),
        child_toml("eager", "tests.children.needs_port", {"port": port}, restart="temporary"),
        child_toml("patient", "tests.children.needs_port", {"port": port}, restart="temporary",
                   after=["slow"]),
    )
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_for("patient", "running", timeout=15)
    assert supervisor.child("eager")["exit_code"] == 3  # started at once, found nothing: the
    assert supervisor.child("slow")["ready"] is True    # test could fail without `after`
    events = supervisor.log_events()
    ready = next(i for i, e in enumerate(events) if e["event"] == "child ready"
                 and e["child"] == "slow")
    started = next(i for i, e in enumerate(events) if e.get("child") == "patient"
                   and e.get("state") == "starting")
    assert ready < started


def _system(port: int, bus: str = "") -> str:
    return bus + child_toml("alpaca-sim", ALPACA_SIM, {"port": port, "rate": 50}) + \
        child_toml("ticker", TICKER)


def _second_run(spawn, run_dir, config) -> Result:
    other = run_dir / "second"
    other.mkdir()
    return tickmesh(spawn, other, "run", str(config))


def test_a_second_system_on_the_same_simulator_port_fails_clearly(spawn, run_dir):
    port = free_port()
    config = write_config(run_dir, _system(port))
    first = Running(spawn, run_dir, config)
    first.wait_all_running()
    second = _second_run(spawn, run_dir, config)
    assert second.code == 1
    assert f"children[0] (alpaca-sim).settings.port: 127.0.0.1:{port} is in use" in second.err
    status = first.wait_all_running()
    assert all(child["restarts"] == 0 for child in status["children"].values())


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_a_second_system_on_the_same_bus_fails_clearly(spawn, run_dir, transport):
    if transport == "tcp":
        publish, subscribe = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    else:
        publish, subscribe = f"ipc://{run_dir}/shared-pub", f"ipc://{run_dir}/shared-sub"
    bus = f'[bus]\npublish = "{publish}"\nsubscribe = "{subscribe}"\n\n'
    config = write_config(run_dir, bus + child_toml("ticker", TICKER))
    first = Running(spawn, run_dir, config)
    first.wait_all_running()
    second = _second_run(spawn, run_dir, config)
    assert second.code == 1 and f"bus.publish: {publish}" in second.err, second.err
    # the first system's bus still serves a new subscriber
    tail = tickmesh(spawn, run_dir, "tail", "trade.ticker", "--count", "2", "--json",
                    "--config", str(config))
    assert tail.code == 0 and len(tail.out.splitlines()) == 2


def test_status_and_tail_find_the_running_system_from_any_directory(spawn, run_dir, tmp_path):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    Running(spawn, run_dir, config).wait_all_running()

    def elsewhere(*args: str) -> subprocess.CompletedProcess:
        process = spawn([*TICKMESH, *args], env=env(run_dir), cwd=tmp_path,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = process.communicate(timeout=20)
        return subprocess.CompletedProcess(args, process.returncode, out, err)

    status = elsewhere("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["children"]["ticker"]["state"] == "running"
    tail = elsewhere("tail", "trade.ticker", "--count", "3", "--json")
    assert tail.returncode == 0, tail.stderr
    assert [json.loads(line)["s"] for line in tail.stdout.splitlines()] == ["TICK"] * 3


def test_status_without_a_running_system_names_the_run_dir(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "status")
    assert result.code == 1 and f"no running system found in {run_dir}" in result.err


def test_a_pattern_with_an_empty_part_is_refused_by_tail(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    result = tickmesh(spawn, run_dir, "tail", "trade.alpaca.", "--config", str(config))
    assert result.code == 2 and "an empty part" in result.err


def test_a_child_that_exits_2_for_bad_settings_is_not_restarted(spawn, run_dir):
    config = write_config(run_dir, child_toml("crasher", "tests.children.crasher", {"code": 2}))
    supervisor = Running(spawn, run_dir, config)
    child = supervisor.wait_for("crasher", "failed")
    assert child["restarts"] == 0 and child["exit_code"] == 2


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "config").glob("*.toml")))
def test_every_shipped_config_passes_check(spawn, run_dir, config):
    result = tickmesh(spawn, run_dir, "check", str(REPO / "config" / config))
    assert result.code == 0 and result.out.startswith("ok:"), result.err
