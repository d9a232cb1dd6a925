"""The endpoint finds itself: a Subscriber or AsyncSubscriber given no endpoint reads the bus of
the system running in the run dir (TICKMESH_RUN_DIR, or the default), through its system.json,
by the same lookup as the command line (bus.endpoints); with none running, the error names the
run dir tried. `tickmesh endpoints` prints the running system's endpoints, and the book and
gap-fill services its config has."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tickmesh.bus import AsyncSubscriber, Publisher, Subscriber
from tickmesh.bus import endpoints
from tickmesh.bus.endpoints import NoSystem
from tickmesh.supervisor import config
from tests.conftest import REPO
from tests.publishing import quote
from tests.supervised import Running, child_toml, env, tickmesh, write_config

TICKER = "tests.children.ticker"


@pytest.fixture
def running(spawn, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real system in `run_dir` (a ticker publishing trade.ticker.TICK), which this test
    process finds through TICKMESH_RUN_DIR; its run dir."""
    Running(spawn, run_dir, write_config(run_dir, child_toml("ticker", TICKER))).wait_all_running()
    monkeypatch.setenv(endpoints.RUN_DIR_ENV, str(run_dir))
    return run_dir


def test_a_subscriber_without_an_endpoint_reads_the_running_systems_bus(running):
    with Subscriber(patterns=["trade.ticker"]) as sub:
        assert sub.endpoint == f"ipc://{running}/subscribe"
        event = sub.recv(timeout=10)
    assert (event.provider, event.symbol) == ("ticker", "TICK")


def test_an_async_subscriber_without_an_endpoint_reads_the_running_systems_bus(running):
    async def first_trade():
        sub = AsyncSubscriber(patterns=["trade.ticker"])
        try:
            return sub.endpoint, await sub.recv(timeout=10)
        finally:
            sub.close()

    endpoint, event = asyncio.run(first_trade())
    assert endpoint == f"ipc://{running}/subscribe" and event.symbol == "TICK"


def test_without_a_running_system_the_error_names_the_run_dir(run_dir, monkeypatch):
    monkeypatch.setenv(endpoints.RUN_DIR_ENV, str(run_dir))
    for reader in (Subscriber, AsyncSubscriber):
        with pytest.raises(NoSystem, match=f"no running system found in {run_dir}"):
            reader(patterns=["trade"])
    (run_dir / endpoints.SYSTEM_FILE).write_text('{"pid": 1}')
    with pytest.raises(NoSystem, match=f"{run_dir}/system.json does not describe a running"):
        Subscriber(patterns=["trade"])


def test_the_default_run_dir_is_the_supervisors(monkeypatch, tmp_path):
    """A reader looks where a supervisor with no run_dir of its own writes its system.json."""
    monkeypatch.delenv(endpoints.RUN_DIR_ENV, raising=False)
    path = tmp_path / "tickmesh.toml"
    path.write_text('[[children]]\nname = "a"\nrun = "pkg.mod"\n')
    assert endpoints.run_dir() == config.load(path).run_dir


def test_tickmesh_endpoints_prints_the_running_systems(spawn, running):
    result = tickmesh(spawn, running, "endpoints")
    assert result.code == 0, result.err
    lines = dict(line.split(None, 1) for line in result.out.splitlines())
    assert lines["subscribe"] == f"ipc://{running}/subscribe"
    assert lines["publish"] == f"ipc://{running}/publish"
    assert lines["control"] == f"ipc://{running}/control"
    as_json = json.loads(tickmesh(spawn, running, "endpoints", "--json").out)
    assert as_json["bus"]["subscribe"] == f"ipc://{running}/subscribe"
    assert as_json["run_dir"] == str(running) and as_json["services"] == []


def test_tickmesh_endpoints_names_the_book_and_gap_fill_services_of_the_config(spawn, run_dir):
    path = write_config(run_dir, child_toml("books", "tickmesh.consumers.books",
                                            {"snapshot_endpoint": "ipc://{run_dir}/books"}),
                        child_toml("recorder", "tickmesh.consumers.recorder",
                                   {"directory": "{run_dir}/rec",
                                    "gapfill_endpoint": "ipc://{run_dir}/gapfill"}))
    result = tickmesh(spawn, run_dir, "endpoints", str(path), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["services"] == [
        {"service": "books", "child": "books", "endpoint": f"ipc://{run_dir}/books"},
        {"service": "gapfill", "child": "recorder", "endpoint": f"ipc://{run_dir}/gapfill"}]
    lines = tickmesh(spawn, run_dir, "endpoints", str(path)).out.splitlines()
    assert [line.split() for line in lines[-2:]] == [
        ["books", f"ipc://{run_dir}/books", "(child", "books)"],
        ["gapfill", f"ipc://{run_dir}/gapfill", "(child", "recorder)"]]


def test_tickmesh_endpoints_without_a_running_system_names_the_run_dir(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "endpoints")
    assert result.code == 1 and f"no running system found in {run_dir}" in result.err


def readme_consumer() -> str:
    section = (REPO / "README.md").read_text().split("## Writing a consumer", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_consumer_finds_the_running_system_as_written(spawn, running):
    code = readme_consumer()
    assert "ipc://" not in code and "tcp://" not in code
    (running / "consumer.py").write_text(code)
    proc = spawn([sys.executable, str(running / "consumer.py")], env=env(running),
                 stdout=subprocess.PIPE, text=True)
    stop = threading.Event()

    def publish() -> None:
        publisher = Publisher(f"ipc://{running}/publish")
        while not stop.wait(0.01):
            publisher.publish(quote("AAPL", 100.0, 100.5))
        publisher.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        line = proc.stdout.readline()
    finally:
        stop.set()
        publisher.join()
    assert line.split() == ["alpaca", "AAPL", "mid", "100.2500"]
