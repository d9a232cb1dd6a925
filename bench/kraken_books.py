"""The Kraken book scenario of `make bench` (issue 18): Kraken book updates, every one verified
against Kraken's CRC32 checksum, turned into order books by tickmesh and by cryptofeed, in one
run.

One Kraken simulator (handlers/kraken/sim/server.py --replay) replays a recording
(bench/kraken_depth.py: PAIRS pairs, a depth-1000 snapshot each, then one-sided updates of 1 to
3 levels, made once) at full speed to each client that subscribes; the sides take turns, run
after run:
- tickmesh: the forwarder, our Kraken handler (book only, depth 1000: every update applied,
  truncated and its checksum compared before it is published) and the order-book builder
  (consumers.books), each a process, and bench.book_counter (another) holding the clock;
- the peer: cryptofeed's Kraken L2_BOOK at depth 1000 with checksum_validation=True and a
  counting callback (bench/peer_cryptofeed_kraken.py, in bench/.peer-venv).
Book updates per second, the same for both: the recording's updates after the snapshots (each
must be applied to a book and its checksum verified) over the time from the subscription (the
replay starts) to the last one applied: for cryptofeed its last delta callback; for us the
builder's bbo of the last update (every pair's last update moves its top). After each run
every book of both sides is checked level by level, all 1000 a side, against the recording's
final books, and cryptofeed's count of verified updates must be all of them (it compares `c`
only where a message's first object has it: the recording's updates have one object each).
Also shown: CPU seconds per million updates (ours: the handler and the builder; the
forwarder, the simulator and the counter are not counted).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import kraken_depth, peer_venv, pipeline
from bench.binance_books import Measure, result_timeout
from bench.processes import Processes, free_port, listening, wait_for
from bench.report import Scenario, scenario
from tickmesh.consumers.books.snapshots import request_book

PAIRS = 50
UPDATES = 50_000
DEPTH = kraken_depth.DEPTH
THROUGHPUT_TARGET = 3.0
PEER_CHECKED_LEVELS = 10
"""cryptofeed's books are checked to this depth (its checksum's): deeper, near the 1000th level,
some of them differ from the venue's (see `diverging`)."""
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_cryptofeed_kraken.py"


def start_bus_and_simulator(procs: Processes, recording: Path, symbols: list[str]) -> int:
    procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    port = free_port()
    procs.child("tickmesh.handlers.kraken.sim.server", "kraken-sim", {
        "port": port, "symbols": symbols, "replay": str(recording / "frames.jsonl")})
    wait_for(lambda: listening(port), "the simulator to listen", timeout=60)
    return port


def run_ours(procs: Processes, port: int, recording: Path, truth: dict) -> Measure:
    counter = procs.start("book-counter", [sys.executable, "-m", "bench.book_counter",
                                           procs.bus.subscribe, str(recording / "truth.json"),
                                           "kraken"], talk=True)
    if counter.stdout.readline().strip() != "ready":
        raise RuntimeError("bench.book_counter did not start")
    endpoint = f"ipc://{procs.run_dir}/books"
    builder = procs.child("tickmesh.consumers.books", "books", {"snapshot_endpoint": endpoint,
                                                                "providers": ["kraken"]})
    wait_for(lambda: Path(endpoint[len("ipc://"):]).exists(), "the builder to start")
    handler = procs.child("tickmesh.handlers.kraken.handler", "kraken", {
        "url": f"ws://127.0.0.1:{port}", "symbols": truth["symbols"], "depth": DEPTH,
        "channels": ["book"]})
    try:
        counter.stdin.write(f"{handler.pid} {builder.pid}\n")
        counter.stdin.flush()
        tally = pipeline.last_json(counter, result_timeout(truth["updates"]))
        if tally["final"] < len(truth["symbols"]):
            raise RuntimeError(f"only {tally['final']} of {len(truth['symbols'])} of our books "
                               f"reached their final top ({tally['gaps']} bus messages missed)")
        books = {}
        for symbol in truth["symbols"]:
            book = request_book(endpoint, "kraken", symbol, 0, 5.0)
            if book.get("state") == "live" and book.get("checksum") == "kraken-crc32":
                books[symbol] = [book["bids"], book["asks"]]
        _check(wrong_books(books, truth), "tickmesh")
        handler_cpu, builder_cpu = tally["cpu_seconds"]
        return Measure(truth["updates"], tally["seconds"], handler_cpu + builder_cpu, tally["bbo"],
                       builder_cpu)
    finally:
        for proc in (handler, builder, counter):
            procs.stop(proc)


@dataclass(frozen=True)
class PeerMeasure(Measure):
    diverging: list[int] = field(default_factory=list)  # first level differing, per side


def run_peer(procs: Processes, python: Path, port: int, truth: dict) -> PeerMeasure:
    timeout = result_timeout(truth["updates"])
    argv = [str(python), str(PEER_SCRIPT), str(port), ",".join(truth["symbols"]),
            str(truth["updates"]), str(timeout + 10)]
    peer = procs.start("peer-cryptofeed-kraken", argv, talk=True)
    try:
        result = pipeline.last_json(peer, timeout)
        if result["verified"] != result["events"] or result["snapshots"] != len(truth["symbols"]):
            raise RuntimeError(f"cryptofeed: {result['verified']:,} of {result['events']:,} "
                               f"updates checksum-verified, {result['snapshots']} snapshots for "
                               f"{len(truth['symbols'])} pairs (a mismatch resubscribes)")
        books = result.pop("books")
        _check(wrong_books(books, truth, PEER_CHECKED_LEVELS), "cryptofeed")
        return PeerMeasure(result["events"], result["seconds"], result["cpu_seconds"],
                           diverging=diverging(books, truth))
    finally:
        procs.stop(peer)


def wrong_books(books: dict[str, list], truth: dict, levels: int | None = None) -> list[str]:
    """The symbols whose book is not the recording's final one, level by level (the top
    `levels` a side; None: all)."""
    def top(book: list) -> list:
        return [[list(level) for level in side[:levels]] for side in book]

    return [symbol for symbol, final in truth["books"].items()
            if symbol not in books or top(books[symbol]) != top(final)]


def diverging(books: dict[str, list], truth: dict) -> list[int]:
    """Per book that differs from the truth, the first level (0: the best) where it does.

    cryptofeed's Kraken book at depth 1000 is an order_book SortedDict of max_depth 1000, which
    drops its worst level on every insert into a full side, before the rest of the update is
    applied, where Kraken says to truncate after the whole update: an update that adds a level
    and then deletes one loses the level at the 1000th place, which Kraken never sends again
    (to Kraken's book it never left). So its deepest levels can differ; the checksum's top 10
    do not."""
    firsts = []
    for symbol, final in truth["books"].items():
        for got, true in zip(books.get(symbol, [[], []]), final):
            got = [list(level) for level in got]
            if got != true:
                firsts.append(next((i for i, (a, b) in enumerate(zip(got, true)) if a != b),
                                   min(len(got), len(true))))
    return firsts


def _check(wrong: list[str], side: str) -> None:
    if wrong:
        raise RuntimeError(f"{side}: {len(wrong)} books differ from the recording's final "
                           f"books (e.g. {wrong[0]})")


def measure(updates: int = UPDATES, runs: int = 3) -> list[Scenario]:
    """Run both sides `runs` times; the medians as the scenario rows."""
    recording = kraken_depth.recording(PAIRS, updates)
    truth = kraken_depth.truth(recording)
    python = peer_venv.peer_python()
    version = peer_venv.installed_version
    peer_name = (f"cryptofeed {version(python, 'cryptofeed')} Kraken L2_BOOK, "
                 f"checksum_validation on (order_book {version(python, 'order-book')}, C)")
    ours: list[Measure] = []
    peers: list[PeerMeasure] = []
    with Processes() as procs:
        port = start_bus_and_simulator(procs, recording, truth["symbols"])
        for run in range(1, runs + 1):
            ours.append(run_ours(procs, port, recording, truth))
            peers.append(run_peer(procs, python, port, truth))
            print(f"run {run}/{runs} ({truth['updates']:,} Kraken book updates, {PAIRS} pairs "
                  f"at depth {DEPTH}): tickmesh {ours[-1].describe()} | cryptofeed "
                  f"{peers[-1].describe()}", flush=True)

    def each(measures: list[Measure], attribute: str) -> list[float]:
        return [getattr(m, attribute) for m in measures]

    details = {"pairs": PAIRS, "depth": DEPTH, "updates": truth["updates"],
               "books_checked": f"ours: all {PAIRS} pairs, all {DEPTH} levels of bids and "
                                "asks, live and kraken-crc32, every run",
               "peer_books_checked": f"the top {PEER_CHECKED_LEVELS} levels a side (deeper, "
                                     "cryptofeed truncates mid-update: kraken_books.diverging)",
               "peer_sides_differing_deeper": [len(m.diverging) for m in peers],
               "peer_shallowest_difference": [min(m.diverging, default=None) for m in peers],
               "builder_cpu_s_per_m": [round(m.cpu_builder / m.events * 1e6, 1) for m in ours]}
    return [
        scenario("kraken-book-updates", "Kraken book updates applied per second, each "
                 "checksum-verified (ours: handler and builder in separate processes)",
                 "updates/s", each(ours, "rate"), each(peers, "rate"), peer_name,
                 higher_is_better=True, target=THROUGHPUT_TARGET, details=details),
        scenario("kraken-book-cpu", "CPU seconds per million checksum-verified Kraken book "
                 "updates (ours: handler + builder)", "CPU s/M updates",
                 each(ours, "cpu_per_million"), each(peers, "cpu_per_million"), peer_name,
                 higher_is_better=False, target=None),
    ]
