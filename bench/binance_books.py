"""The book scenario of `make bench`: a Binance depth stream turned into order books, by
tickmesh and by cryptofeed, in one run.

One Binance simulator replays a recording (bench/binance_depth.py: 100 symbols, ~100 levels a
side, depthUpdates of 5 to 20 levels, made once) at full speed to each client that subscribes,
with the recorded REST snapshots, held for them (hold_for_snapshots, below); the sides take
turns, run after run:
- tickmesh: the forwarder, our Binance handler (depth only) and the order-book builder
  (consumers.books), each a process, and bench.book_counter (another) holding the clock;
- the peer: cryptofeed's Binance L2_BOOK with a counting callback (bench/peer_cryptofeed_book.py,
  in bench/.peer-venv).
Book updates per second, the same for both: the depthUpdates each side applied to its books
one by one, over the time from the subscription (the replay starts) to the last one applied
(the snapshots' fetch, the hold, included):
for cryptofeed its delta callbacks, until every symbol's last one; for us the deltas the
builder applied (a book's last delta's bus sequence number: the handler's publisher numbers a
symbol's deltas 1, 2, ... after its first snapshot, and the builder applies one only if it
follows the one before), until the builder's bbo of every symbol's last event (every symbol's
last event moves its top). After each run every book of both sides is checked level by level
against the recording's final books, and ours must each be of their first snapshot (no
resync).

Why count what was applied, and why the replay is held. Until issue 21 both sides were
credited with the recording's every depthUpdate after the snapshots, but ours are not all
deltas: those that arrive while our handler fetches a symbol's snapshot are buffered and folded
into it (Binance's documented sync), never crossing the bus. Replayed whole as fast as the
handler reads, nearly all of the recording came during our 100 snapshots (~0.5 s) and was
folded: counting only the deltas applied (ours 1,851/s, cryptofeed 18,409/s) then measured
that phase, not book updates. cryptofeed folds none: it fetches a symbol's snapshot when that
symbol's first depthUpdate comes, and reads nothing more until it has it. So the simulator
holds the replay (handlers.binance.sim.server's hold_for_snapshots): it sends the recording in
order until every symbol's first depthUpdate has gone (which starts cryptofeed's fetches),
then nothing more until a REST depth answer has been served for every symbol since that side
subscribed, then the rest. Both sides have all their snapshots before the rest comes and apply
it as deltas. This answers what was once held against a hold: cryptofeed's fetches wait for
the stream (the prefix starts them); the simulator would have to tie REST answers to a
connection (it need not: the sides run in turn, one held client at a time); our sync still
folds the first update after each symbol's snapshot (it does: handlers/binance/sync.py holds
a snapshot until an update straddles it and publishes the two as the snapshot, 1 update a
symbol, uncredited, as is any update that overtakes the last REST answers on the wire).
Counting each side's applied deltas from its own state stays the honest count: it credits both
only for the same work (a depthUpdate applied to a book as a delta), and what we fold stays
inside our time: it can only understate us. The old figure (the recording's updates after its
snapshots over the same time) stays in the records' details for one release
(`before_issue_21`), for the README to show once beside the new.
Also shown: bbo events the builder published, and CPU seconds per million updates applied
(ours: the handler and the builder; the forwarder, the simulator and the counter are not
counted).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bench import binance_depth, peer_venv, pipeline
from bench.processes import Processes, free_port, listening, wait_for
from bench.report import Scenario, scenario
from tickmesh.consumers.books.snapshots import request_book

SYMBOLS = 100
EVENTS = 100_000
THROUGHPUT_TARGET = 3.0
PEER_SCRIPT = Path(__file__).resolve().parent / "peer_cryptofeed_book.py"
SIM_WEIGHT_PER_MINUTE = 10**9
"""The simulator's REST weight budget, and our handler's: both sides fetch 100 snapshots a run,
and neither may wait on a limit the other does not (cryptofeed paces nothing)."""


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
        """inf if no update was applied (all folded into snapshots)."""
        return self.cpu_seconds / self.events * 1e6 if self.events else math.inf

    def describe(self) -> str:
        bbo = f", {self.bbo:,} bbo ({self.bbo / self.seconds:,.0f}/s)" if self.bbo else ""
        split = (f" (builder {self.cpu_builder / self.events * 1e6:.1f})"
                 if self.cpu_builder and self.events else "")
        return f"{self.rate:,.0f} updates/s{bbo}, {self.cpu_per_million:.1f} CPU s/M{split}"


def start_bus_and_simulator(procs: Processes, recording: Path, symbols: list[str]) -> int:
    procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    port = free_port()
    procs.child("tickmesh.handlers.binance.sim.server", "binance-sim", {
        "port": port, "symbols": symbols, "replay": str(recording / "frames.jsonl"),
        "snapshots": str(recording / "snapshots.jsonl"), "hold_for_snapshots": True,
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
        "symbols": truth["symbols"], "channels": ["depth"],
        "rest_weight_per_minute": SIM_WEIGHT_PER_MINUTE})
    try:
        counter.stdin.write(f"{handler.pid} {builder.pid}\n")
        counter.stdin.flush()
        tally = pipeline.last_json(counter, result_timeout(truth["updates"]))
        if tally["final"] < len(truth["symbols"]):
            raise RuntimeError(f"only {tally['final']} of {len(truth['symbols'])} of our books "
                               f"reached their final top ({tally['gaps']} bus messages missed)")
        replies = {symbol: request_book(endpoint, "binance", symbol, 0, 5.0)
                   for symbol in truth["symbols"]}
        books = {symbol: [reply["bids"], reply["asks"]] for symbol, reply in replies.items()
                 if reply.get("state") == "live"}
        _check(wrong_books(books, truth), "tickmesh")
        handler_cpu, builder_cpu = tally["cpu_seconds"]
        return Measure(applied_deltas(replies), tally["seconds"], handler_cpu + builder_cpu,
                       tally["bbo"], builder_cpu)
    finally:
        for proc in (handler, builder, counter):
            procs.stop(proc)


def applied_deltas(replies: dict[str, dict]) -> int:
    """The deltas our builder applied, from its answers about each book: the bus sequence number
    of the last delta applied to a book is how many it applied (its first snapshot's delta_seq
    is 0, and the builder applies a delta only if its number follows the last one's)."""
    resynced = [symbol for symbol, reply in replies.items() if reply.get("generation") != 1]
    if resynced:
        raise RuntimeError(f"tickmesh: {len(resynced)} books not of their first snapshot (e.g. "
                           f"{resynced[0]}): their deltas cannot be counted")
    return sum(reply["seq"] for reply in replies.values() if reply["kind"] == "book_delta")


def run_peer(procs: Processes, python: Path, port: int, recording: Path,
             truth: dict) -> Measure:
    timeout = result_timeout(truth["updates"])
    argv = [str(python), str(PEER_SCRIPT), str(port), str(recording / "truth.json"),
            str(timeout + 10)]
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
            peers.append(run_peer(procs, python, port, recording, truth))
            print(f"run {run}/{runs} ({truth['updates']:,} book updates after the snapshots, "
                  f"{SYMBOLS} symbols): tickmesh {describe(ours[-1], truth)} | cryptofeed "
                  f"{describe(peers[-1], truth)}", flush=True)

    def each(measures: list[Measure], attribute: str) -> list[float]:
        return [getattr(m, attribute) for m in measures]

    rates = scenario("binance-book-updates", "depthUpdates applied to books as deltas per "
                     "second (ours: handler and builder in separate processes)", "updates/s",
                     each(ours, "rate"), each(peers, "rate"), peer_name,
                     higher_is_better=True, target=THROUGHPUT_TARGET,
                     details=before_issue_21(ours, peers, truth, "rate"))
    cpu = scenario("binance-book-cpu", "CPU seconds per million book updates applied as "
                   "deltas (ours: handler + builder)", "CPU s/M updates",
                   each(ours, "cpu_per_million"), each(peers, "cpu_per_million"), peer_name,
                   higher_is_better=False, target=None,
                   details=before_issue_21(ours, peers, truth, "cpu_per_million"))
    return [rates, cpu]


def recorded(measure: Measure, truth: dict) -> Measure:
    """The measure as credited before issue 21: every update after the recording's snapshots."""
    return replace(measure, events=truth["updates"])


def describe(measure: Measure, truth: dict) -> str:
    return (f"{measure.events:,} applied, {measure.describe()} (crediting all "
            f"{truth['updates']:,}: {recorded(measure, truth).rate:,.0f}/s)")


def before_issue_21(ours: list[Measure], peers: list[Measure], truth: dict,
                    attribute: str) -> dict:
    """The record's details: what each side applied per run, and the figure as it was counted
    before issue 21 (kept for one release, for the README to show old beside new)."""
    def old(measures: list[Measure]) -> list[float]:
        return [getattr(recorded(m, truth), attribute) for m in measures]

    higher_is_better = attribute == "rate"
    was = scenario("", "", "", old(ours), old(peers), "", higher_is_better=higher_is_better,
                   target=None)
    return {"updates_after_snapshots": truth["updates"],
            "applied": {"ours": [m.events for m in ours], "peer": [m.events for m in peers]},
            "before_issue_21": {"counted": "every update after the recording's snapshots, "
                                           "ours folded into snapshots included",
                                "ours": was.ours, "peer": was.peer, "ratio": was.ratio,
                                "spread": was.spread}}
