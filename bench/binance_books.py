"""The book scenario of `make bench`: a Binance depth stream turned into order books, by
tickmesh and by cryptofeed, in one run.

One Binance simulator replays a recording (bench/binance_depth.py: 100 symbols, ~100 levels a
side, depthUpdates of 5 to 20 levels, made once) at full speed to each client that subscribes,
with the recorded REST snapshots; the sides take turns, run after run:
- tickmesh: the forwarder, our Binance handler (depth only) and the order-book builder
  (consumers.books), each a process, and bench.book_counter (another) holding the clock;
- the peer: cryptofeed's Binance L2_BOOK with a counting callback (bench/peer_cryptofeed_book.py,
  in bench/.peer-venv).
Book updates per second, the same for both: the recording's depthUpdates that come after its
snapshots (every one must be applied to a book), over the time from the subscription (the
replay starts) to the last one applied: for cryptofeed its last delta callback; for us the
builder's bbo of the last event (every symbol's last event moves its top). After each run
every book of both sides is checked level by level against the recording's final books.
Also shown: bbo events the builder published, and CPU seconds per million updates (ours: the
handler and the builder; the forwarder, the simulator and the counter are not counted).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench import binance_depth, peer_venv, pipeline
from bench.processes import Processes, free_port, listening, wait_for
from bench.report import Scenario, scenario
from tickmesh.consumers.books.snapshots import request_book

SYMBOLS = 100
EVENTS = 100_000
THROUGHPUT_TARGET = 3.0
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_cryptofeed_book.py"
SIM_WEIGHT_PER_MINUTE = 10**9  # both sides fetch 100 snapshots a run: no 429 between runs


@dataclass(frozen=True)
class Measure:
    events: int
    seconds: float
    cpu_seconds: float
    bbo: int = 0
    cpu_builder: float = 0.0  # of cpu_seconds (ours)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_per_million(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    def describe(self) -> str:
        bbo = f", {self.bbo:,} bbo ({self.bbo / self.seconds:,.0f}/s)" if self.bbo else ""
        split = (f" (builder {self.cpu_builder / self.events * 1e6:.1f})"
                 if self.cpu_builder else "")
        return f"{self.rate:,.0f} updates/s{bbo}, {self.cpu_per_million:.1f} CPU s/M{split}"


def start_bus_and_simulator(procs: Processes, recording: Path, symbols: list[str]) -> int:
    procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    port = free_port()
    procs.child("tickmesh.handlers.binance.sim.server", "binance-sim", {
        "port": port, "symbols": symbols, "replay": str(recording / "frames.jsonl"),
        "snapshots": str(recording / "snapshots.jsonl"),
        "weight_per_minute": SIM_WEIGHT_PER_MINUTE})
    wait_for(lambda: listening(port), "the simulator to listen", timeout=60)
    return port


def wrong_books(books: dict[str, list], truth: dict) -> list[str]:
    """The symbols whose book is not the recording's final one, level by level."""
    return [symbol for symbol, final in truth["books"].items() if books.get(symbol) != final]


def run_ours(procs: Processes, port: int, recording: Path, truth: dict) -> Measure:
    counter = procs.start("book-counter", [sys.executable, "-m", "bench.book_counter",
                                           procs.bus.subscribe, str(recording / "truth.json")],
                          talk=True)
    if counter.stdout.readline().strip() != "ready":
        raise RuntimeError("bench.book_counter did not start")
    endpoint = f"ipc://{procs.run_dir}/books"
    builder = procs.child("tickmesh.consumers.books", "books", {"snapshot_endpoint": endpoint,
                                                       "providers": ["binance"]})
    wait_for(lambda: Path(endpoint[len("ipc://"):]).exists(), "the builder to start")
    handler = procs.child("tickmesh.handlers.binance.handler", "binance", {
        "url": f"ws://127.0.0.1:{port}/stream", "rest_url": f"http://127.0.0.1:{port}",
        "symbols": truth["symbols"], "channels": ["depth"]})
    try:
        counter.stdin.write(f"{handler.pid} {builder.pid}\n")
        counter.stdin.flush()
        tally = pipeline.last_json(counter, result_timeout(truth["updates"]))
        if tally["final"] < len(truth["symbols"]):
            raise RuntimeError(f"only {tally['final']} of {len(truth['symbols'])} of our books "
                               f"reached their final top ({tally['gaps']} bus messages missed)")
        books = {}
        for symbol in truth["symbols"]:
            book = request_book(endpoint, "binance", symbol, 0, 5.0)
            if book.get("state") == "live":
                books[symbol] = [book["bids"], book["asks"]]
        _check(wrong_books(books, truth), "tickmesh")
        handler_cpu, builder_cpu = tally["cpu_seconds"]
        return Measure(truth["updates"], tally["seconds"], handler_cpu + builder_cpu, tally["bbo"],
                       builder_cpu)
    finally:
        for proc in (handler, builder, counter):
            procs.stop(proc)


def run_peer(procs: Processes, python: Path, port: int, truth: dict) -> Measure:
    timeout = result_timeout(truth["updates"])
    argv = [str(python), str(PEER_SCRIPT), str(port), ",".join(truth["symbols"]),
            str(truth["updates"]), str(timeout + 10)]
    peer = procs.start("peer-cryptofeed", argv, talk=True)
    try:
        result = pipeline.last_json(peer, timeout)
        _check(wrong_books(result.pop("books"), truth), "cryptofeed")
        return Measure(**result)
    finally:
        procs.stop(peer)


def result_timeout(updates: int) -> int:
    """Seconds to wait for a side's result: its start, then at least 2,000 updates/s."""
    return 60 + updates // 2_000



def _check(wrong: list[str], side: str) -> None:
    if wrong:
        raise RuntimeError(f"{side}: {len(wrong)} books differ from the recording's final "
                           f"books (e.g. {wrong[0]})")


def measure(events: int = EVENTS, runs: int = 3) -> list[Scenario]:
    """Run both sides `runs` times; the medians as the scenario rows."""
    recording = binance_depth.recording(SYMBOLS, events)
    truth = binance_depth.truth(recording)
    python = peer_venv.peer_python()
    version = peer_venv.installed_version
    peer_name = (f"cryptofeed {version(python, 'cryptofeed')} Binance L2_BOOK "
                 f"(order_book {version(python, 'order-book')}, C)")
    ours: list[Measure] = []
    peers: list[Measure] = []
    with Processes() as procs:
        port = start_bus_and_simulator(procs, recording, truth["symbols"])
        for run in range(1, runs + 1):
            ours.append(run_ours(procs, port, recording, truth))
            peers.append(run_peer(procs, python, port, truth))
            print(f"run {run}/{runs} ({truth['updates']:,} book updates, {SYMBOLS} symbols): "
                  f"tickmesh {ours[-1].describe()} | cryptofeed {peers[-1].describe()}",
                  flush=True)

    def each(measures: list[Measure], attribute: str) -> list[float]:
        return [getattr(m, attribute) for m in measures]

    return [
        scenario("binance-book-updates", "depthUpdates applied to books per second (ours: "
                 "handler and builder in separate processes)", "updates/s",
                 each(ours, "rate"), each(peers, "rate"), peer_name,
                 higher_is_better=True, target=THROUGHPUT_TARGET),
        scenario("binance-book-cpu", "CPU seconds per million book updates (ours: handler + "
                 "builder)", "CPU s/M updates", each(ours, "cpu_per_million"),
                 each(peers, "cpu_per_million"), peer_name,
                 higher_is_better=False, target=None),
    ]
