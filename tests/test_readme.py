"""The README's example consumers run as written: the plain one against a real bus, in under
20 lines, and the supervised one under a real supervisor."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading

from tickmesh.bus import Publisher, Quote
from tickmesh.bus.endpoints import RUN_DIR_ENV, SYSTEM_FILE
from tests.conftest import REPO
from tests.recorded import record_run
from tests.supervised import TICKMESH, child_toml, env, tickmesh, write_config
from tests.waiting import wait_until


def readme_consumer() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Writing a consumer", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def start_readme_consumer(spawn, run_dir, forwarder, **popen) -> subprocess.Popen:
    """The README's consumer as written, finding the bus in the run dir's system.json (one
    naming the test's forwarder, as a supervisor writes it)."""
    script = run_dir / "consumer.py"
    script.write_text(readme_consumer())
    (run_dir / SYSTEM_FILE).write_text(json.dumps({
        "config": "test", "control": f"ipc://{run_dir}/control", "bus": forwarder.to_dict()}))
    return spawn([sys.executable, str(script)], env={RUN_DIR_ENV: str(run_dir)}, **popen)


def test_readme_consumer_is_short_and_prints_exactly_aapl_mids(forwarder, spawn, run_dir):
    code = readme_consumer()
    assert len([line for line in code.splitlines() if line.strip()]) < 20
    proc = start_readme_consumer(spawn, run_dir, forwarder, stdout=subprocess.PIPE, text=True)
    stop = threading.Event()

    def publish() -> None:
        pub = Publisher(forwarder.publish)
        while not stop.wait(0.005):
            for provider, symbol in (("alpaca", "AAPL"), ("polygon", "AAPL"), ("alpaca", "AAPLX")):
                pub.publish(Quote(provider=provider, symbol=symbol, ts_event=1, ts_recv=2,
                                  bid_price=100.0, bid_size=1.0, ask_price=100.5, ask_size=1.0))
        pub.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        lines = [proc.stdout.readline().split() for _ in range(10)]
    finally:
        stop.set()
        publisher.join()
    assert {line[0] for line in lines} == {"alpaca", "polygon"}
    assert all(line[1:] == ["AAPL", "mid", "100.2500"] for line in lines)


def test_readme_supervised_consumer_runs_under_the_supervisor(spawn, run_dir):
    section = (REPO / "README.md").read_text().split("To run it under the supervisor", 1)[1]
    (run_dir / "readme_spread.py").write_text(
        re.search(r"```python\n(.*?)```", section, re.S).group(1))
    config = write_config(run_dir, child_toml("spread", "readme_spread"))
    log_path = run_dir / "supervisor.log"
    environment = {**env(run_dir), "PYTHONPATH": str(run_dir)}
    with log_path.open("w") as log:
        spawn([*TICKMESH, "run", str(config)], env=environment, stderr=log)
    wait_until(lambda: (run_dir / "system.json").exists(), what="the system to start")
    publisher = Publisher(f"ipc://{run_dir}/publish")

    def logged_spreads() -> list[dict]:
        publisher.publish(Quote(provider="alpaca", symbol="AAPL", ts_event=1, ts_recv=2,
                                bid_price=100.0, bid_size=1.0, ask_price=100.5, ask_size=1.0))
        lines = [json.loads(line) for line in log_path.read_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if line.get("event") == "spread"]

    try:
        spreads = wait_until(logged_spreads, timeout=20, what="the consumer's log lines")
    finally:
        publisher.close()
    assert spreads[0]["spread"] == 0.5 and spreads[0]["process"] == "spread"


def test_readme_pandas_line_reads_an_export_as_written(spawn, spawn_child, forwarder, run_dir):
    section = (REPO / "README.md").read_text().split("## Recording, replay and export", 1)[1]
    block = next(block for block in re.findall(r"```sh\n(.*?)```", section, re.S)
                 if "import pandas" in block)
    export_line, pandas_line = [line for line in block.splitlines() if line.strip()]
    export, python = shlex.split(export_line), shlex.split(pandas_line)
    assert export[export.index("--out") + 1] == "day/"
    assert python[0] == ".venv/bin/python"  # the project's venv: the system's has no pandas
    directory = run_dir / "rec"
    record_run(spawn, spawn_child, forwarder.publish, directory, 100)
    result = tickmesh(spawn, run_dir, "export", str(directory), "--to", "parquet", "--out",
                      str(run_dir / "day"))
    assert result.code == 0, result.err
    read = spawn([str(REPO / python[0]), *python[1:]], cwd=run_dir, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    out, err = read.communicate(timeout=30)
    assert read.returncode == 0, err
    assert "price" in out and "[5 rows x" in out  # pandas' head() of the trades table
