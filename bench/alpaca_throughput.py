"""The Alpaca scenario of `make bench`: trades through tickmesh against alpaca-py's
StockDataStream, in one run.

One Alpaca simulator in blast mode (pre-built msgpack frames of 10 trades over 100 symbols, sent
as fast as the socket takes them) serves both sides, which take turns, run after run, so that
machine noise hits both:
- tickmesh: a forwarder, the Alpaca handler, and bench.counter (another process) counting the
  trades the bus delivers and the handler's CPU time over the same span;
- the peer: alpaca-py's StockDataStream with a callback that only counts (bench/peer_alpaca_sdk.py,
  run in bench/.peer-venv, which is created on first use);
- the floor: bench/floor_alpaca.py, the least a Python handler does per trade with our libraries
  (websockets on uvloop, msgspec decode, normalize, encode, two pyzmq sends to the same
  forwarder), delivering to bench.counter in another process like ours.
The medians of the runs are the scenario rows (`measure`; `python -m bench` prints and saves
them): delivered trades per second (targets: at least 3x alpaca-py's, at least 1.0x the
floor's) and the handler's CPU seconds per million trades (target: at most 1/3 of alpaca-py's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import peer_venv
from bench.processes import Processes, free_port, listening, wait_for
from bench.report import Scenario, scenario
from tickmesh.handlers.alpaca.sim.market import BLAST_TRADES_PER_FRAME

FRAMES = 100_000
RUNS = 3
THROUGHPUT_TARGET = 3.0
CPU_TARGET = 3.0  # alpaca-py's CPU per trade / ours
FLOOR_TARGET = 1.0
FLOOR_NAME = "floor: hand-written websockets + msgspec + pyzmq loop (bench/floor_alpaca.py)"
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_alpaca_sdk.py"
KEY_ENV, SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
CREDENTIALS = {KEY_ENV: "bench-key", SECRET_ENV: "bench-secret"}


@dataclass(frozen=True)
class Measure:
    """One side of one run, from its first trade to its last."""

    events: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    def describe(self, expected: int) -> str:
        lost = f", {expected - self.events:,} lost" if self.events < expected else ""
        return f"{self.rate:,.0f} trades/s, {self.cpu_per_million:.2f} CPU s/M{lost}"


def start_bus_and_simulator(procs: Processes, frames: int) -> int:
    """The forwarder and the blasting simulator, shared by every run; the simulator's port."""
    procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    port = free_port()
    settings = {"port": port, "blast": frames, "key_env": KEY_ENV, "secret_env": SECRET_ENV}
    procs.child("tickmesh.handlers.alpaca.sim.server", "alpaca-sim", settings, env=CREDENTIALS)
    wait_for(lambda: listening(port), "the simulator to listen")
    return port


def result_timeout(expected: int) -> int:
    """Seconds to wait for a side's result: its start, then at least 10k trades/s."""
    return 60 + expected // 10_000


def start_counter(procs: Processes, expected: int) -> subprocess.Popen:
    counter = procs.start("counter", [sys.executable, "-m", "bench.counter", procs.bus.subscribe,
                                      str(expected)], talk=True)
    if counter.stdout.readline().strip() != "ready":
        raise RuntimeError("bench.counter did not start")
    return counter


def run_ours(procs: Processes, port: int, expected: int) -> Measure:
    counter = start_counter(procs, expected)
    settings = {"url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["*"], "channels": ["trades"]}
    handler = procs.child("tickmesh.handlers.alpaca.handler", "alpaca", settings, env=CREDENTIALS)
    return _counted(procs, counter, handler, expected)


def run_floor(procs: Processes, port: int, expected: int) -> Measure:
    counter = start_counter(procs, expected)
    floor = procs.start("floor", [sys.executable, "-m", "bench.floor_alpaca",
                                  f"ws://127.0.0.1:{port}/v2/iex", procs.bus.publish],
                        env=CREDENTIALS)
    return _counted(procs, counter, floor, expected)


def _counted(procs: Processes, counter: subprocess.Popen, handler: subprocess.Popen,
             expected: int) -> Measure:
    """The counter's tally of what `handler` delivered."""
    try:
        counter.stdin.write(f"{handler.pid}\n")
        counter.stdin.flush()
        return _result(counter, result_timeout(expected))
    finally:
        procs.stop(handler)
        procs.stop(counter)


def run_peer(procs: Processes, python: Path, port: int, expected: int) -> Measure:
    timeout = result_timeout(expected)
    argv = [str(python), str(PEER_SCRIPT), str(port), str(expected), str(timeout + 10)]
    peer = procs.start("peer", argv, env=CREDENTIALS, talk=True)
    try:
        return _result(peer, timeout)
    finally:
        procs.stop(peer)


def _result(proc: subprocess.Popen, timeout: int) -> Measure:
    """The JSON line a measuring process prints last, as a Measure."""
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}")
    tally = json.loads(lines[-1])
    measure = Measure(tally["events"], tally["seconds"], tally["cpu_seconds"])
    if measure.seconds <= 0 or measure.cpu_seconds <= 0:
        raise RuntimeError(f"too short to measure ({measure}): use more --frames")
    return measure


def scenarios(ours: list[Measure], peers: list[Measure], peer_name: str,
              floors: list[Measure]) -> list[Scenario]:
    """The runs as the scenario rows (medians, ratios within each run)."""
    def each(measures: list[Measure], attribute: str) -> list[float]:
        return [getattr(m, attribute) for m in measures]

    return [
        scenario("alpaca-trades-throughput", "trades delivered per second (to another process, "
                 "through the forwarder)", "events/s", each(ours, "rate"), each(peers, "rate"),
                 peer_name, higher_is_better=True, target=THROUGHPUT_TARGET),
        scenario("alpaca-trades-vs-floor", "trades delivered per second, against the floor",
                 "events/s", each(ours, "rate"), each(floors, "rate"), FLOOR_NAME,
                 higher_is_better=True, target=FLOOR_TARGET),
        scenario("alpaca-handler-cpu", "handler CPU seconds per million trades", "CPU s/M events",
                 each(ours, "cpu_per_million"), each(peers, "cpu_per_million"), peer_name,
                 higher_is_better=False, target=CPU_TARGET),
        scenario("alpaca-handler-cpu-vs-floor", "handler CPU seconds per million trades, "
                 "against the floor", "CPU s/M events", each(ours, "cpu_per_million"),
                 each(floors, "cpu_per_million"), FLOOR_NAME, higher_is_better=False,
                 target=None),
    ]


def measure(frames: int = FRAMES, runs: int = RUNS) -> list[Scenario]:
    """Run both sides `runs` times over `frames` frames each; the medians as the rows."""
    python = peer_venv.peer_python()
    peer_name = f"alpaca-py {peer_venv.installed_version(python, 'alpaca-py')} StockDataStream"
    expected = frames * BLAST_TRADES_PER_FRAME
    ours: list[Measure] = []
    peers: list[Measure] = []
    floors: list[Measure] = []
    with Processes() as procs:
        port = start_bus_and_simulator(procs, frames)
        for run in range(1, runs + 1):
            ours.append(run_ours(procs, port, expected))
            peers.append(run_peer(procs, python, port, expected))
            floors.append(run_floor(procs, port, expected))
            print(f"alpaca run {run}/{runs} ({expected:,} trades): "
                  f"tickmesh {ours[-1].describe(expected)} | "
                  f"alpaca-py {peers[-1].describe(expected)} | "
                  f"floor {floors[-1].describe(expected)}", flush=True)
    return scenarios(ours, peers, peer_name, floors)
