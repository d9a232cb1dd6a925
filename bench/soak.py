"""`make soak`: a whole system under the real supervisor for a while, at a high rate, with faults
injected on a schedule; then a table of what happened.

    python -m bench.soak [--minutes 10] [--out bench/soak.json]      (SOAK_ARGS="--minutes 1")

The system (`tickmesh run` on a generated config, in a temporary run dir, free loopback ports):
the Alpaca and Binance simulators at a high rate, the Coinbase and Kraken ones at their own,
their handlers, the order-book builder, the recorder, and this process's own subscriber (a
thread: every topic, raw, per-topic sequence tracking). Faults, in turn, one at a time
(FAULTS): simulator drop, stall, quiet, error, burst and a corrupt Kraken checksum; SIGKILL of
a handler, of the builder, of the recorder, of the forwarder; a simulator restarted through
the supervisor. A fault is recovered once, after it ended, every provider's data flows again
(an event whose handler receive time `tr` is later than the fault's end), every Binance,
Coinbase and Kraken book is live with fresh bbo, and a killed or restarted process heartbeats
in a new epoch. Time to recover is from the fault's end (its injection; the end of a stall or
quiet).

The books' invariant, end to end (BookCheck): after every CHECK_EVERY faults and at the end,
the Binance, Coinbase and Kraken simulators stand still (/control/quiet), and every book the
builder says is live (asked through its snapshot service) must equal the simulator's true
book (/control/book). A check first waits for every book to be live (a stale or resyncing one is
counted, not a failure), quiets the market, then waits until no live book differs from the
truth (a live book may still be taking the last changes); one that still differs after
EQUAL_TIMEOUT_S is a mismatch. A book that went stale while the market stood still (a Binance
resync needs a depth event after its snapshot) gets the market moving again and the check
another try; one not live LIVE_TIMEOUT_S into the check never came back (the live ones are
compared all the same).

Losses, from the soak subscriber and from the recording: a hole is a skipped sequence number or
a new epoch on a topic. A hole is excused when, between the topic's message before it and the one
that revealed it, a fault touched that topic's publisher or path ([start, recovered + GRACE_S]);
anything else is a loss (must be 0). An unexcused new epoch counts as one lost event.

RSS and open fds of the supervisor and each child (not their keepers) are read after warm-up,
before each fault and at the end; the table shows the first and the last (a restarted child's
is its new process). Flat: on the longest-lived process of each name, if it lived at least
FLAT_MIN_SPAN_S, last RSS <= first * 1.25 + 8 MB and last fds <= first + 4.
The table is printed and written as JSON (--out); exit status 1, saying why, unless every fault
recovered, nothing was lost, every live book checked equalled the true book and every book came
back live.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import urlopen

import msgspec
import zmq

from bench.processes import REPO, Processes, free_port, wait_for
from tickmesh.bus import sockets
from tickmesh.consumers.books.snapshots import NoBuilder, request_book
from tickmesh.consumers.recorder.recording import GAP, MESSAGE, Recording
from tickmesh.supervisor.control import NoSupervisor, request_restart, request_status

BINANCE_SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "ETH-BTC"]
ALPACA_SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "GOOG", "META", "AMD"]
COINBASE_SYMBOLS = ["BTC-USD", "ETH-USD"]
KRAKEN_SYMBOLS = ["BTC-USD", "ETH-USD"]
BOOKS = {"binance": BINANCE_SYMBOLS, "coinbase": COINBASE_SYMBOLS,
         "kraken": KRAKEN_SYMBOLS}  # providers with L2 books
BOOK_KINDS = ("bbo", "depth", "book_status", "control")
RECOVERY_TIMEOUT_S = 45.0
GRACE_S = 2.0
WARMUP_S = 8.0
TAIL_S = 5.0
FLAT_MIN_SPAN_S = 60.0
HANDLER = {"alpaca": "alpaca", "binance": "binance", "coinbase": "coinbase",
           "kraken": "kraken"}
CHECK_EVERY = 6  # faults between two checks of the books
LIVE_TIMEOUT_S = 60.0  # from a check's start, for every book to be live
EQUAL_TIMEOUT_S = 10.0  # from the quiet, for every live book to equal the true one
QUIET_S = 120.0  # a check's quiet at most (it ends the quiet itself)
TRUE_DEPTH = {"binance": 5000, "coinbase": 1000, "kraken": 1000}  # a true book's levels
# asked: all, the most (Kraken: its subscribed depth)
POLL_S = 0.1

Book = tuple[dict[float, float], dict[float, float]]  # bids, asks: price -> size
BookKey = tuple[str, str]  # provider, symbol
T = TypeVar("T")


@dataclass(frozen=True)
class Fault:
    name: str
    kind: str  # sim control action, "kill" (SIGKILL) or "restart" (through the supervisor)
    target: str  # a simulator's provider for sim actions, else a child's name
    query: str = ""
    seconds: float = 0.0  # how long it lasts (stall, quiet)
    touches: tuple[str, ...] = ()  # publishers whose topics may hole ("*": every one)
    recording_only: tuple[str, ...] = ()  # those whose topics may hole in the recording only


FAULTS = [
    Fault("alpaca-sim drop", "drop", "alpaca", touches=("alpaca",)),
    Fault("binance-sim stall 3s", "stall", "binance", "seconds=3", 3, ("binance",)),
    Fault("alpaca-sim quiet 3s", "quiet", "alpaca", "seconds=3", 3, ("alpaca",)),
    Fault("alpaca-sim error 407", "error", "alpaca", "code=407", touches=("alpaca",)),
    Fault("binance-sim burst 20000", "burst", "binance", "count=20000",
          touches=("binance",)),
    Fault("SIGKILL alpaca handler", "kill", "alpaca", touches=("alpaca",)),
    Fault("binance-sim drop", "drop", "binance", touches=("binance",)),
    Fault("coinbase-sim drop", "drop", "coinbase", touches=("coinbase",)),
    Fault("SIGKILL binance handler", "kill", "binance", touches=("binance",)),
    Fault("SIGKILL coinbase handler", "kill", "coinbase", touches=("coinbase",)),
    Fault("kraken-sim corrupt", "corrupt", "kraken", "pair=BTC-USD", touches=("kraken",)),
    Fault("kraken-sim drop", "drop", "kraken", touches=("kraken",)),
    Fault("SIGKILL books", "kill", "books", touches=("books",)),
    Fault("SIGKILL recorder", "kill", "recorder", touches=("recorder",),
          recording_only=("*",)),
    Fault("SIGKILL forwarder", "kill", "forwarder", touches=("*",)),
    Fault("restart binance-sim", "restart", "binance-sim",
          touches=("binance-sim", "binance")),
]


@dataclass
class Injected:
    fault: Fault
    start_ns: int
    end_ns: int
    recovered_ns: int | None = None

    def window(self) -> tuple[int, int]:
        last = self.recovered_ns or self.start_ns + int(RECOVERY_TIMEOUT_S * 1e9)
        return self.start_ns, last + int(GRACE_S * 1e9)


class Stamp(msgspec.Struct, gc=False):
    q: int = 0
    e: int = 0
    tr: int = 0
    st: str = ""


def publisher(topic: bytes) -> str:
    """Who publishes a topic (`kind.source.SYMBOL|`): a handler, the builder, a heartbeat's
    process."""
    kind, _, rest = topic.decode(errors="replace").partition(".")
    source = rest.partition(".")[0]
    if kind in BOOK_KINDS:
        return "books"
    return source if kind == "heartbeat" else HANDLER.get(source, source)


class Holes:
    """Per-topic sequence tracking: every gap or epoch change, with the times of the messages
    on either side of it (ns)."""

    def __init__(self) -> None:
        self.last: dict[bytes, tuple[int, int, int]] = {}  # topic -> epoch, seq, time
        self.holes: list[tuple[bytes, int, int, int]] = []  # topic, missed (-1 epoch), t0, t1
        self.messages = 0

    def see(self, topic: bytes, epoch: int, seq: int, now: int) -> None:
        self.messages += 1
        before = self.last.get(topic)
        self.last[topic] = (epoch, seq, now)
        if before is None:
            return
        if before[0] != epoch:
            self.holes.append((topic, -1, before[2], now))
        elif seq > before[1] + 1:
            self.holes.append((topic, seq - before[1] - 1, before[2], now))


class SoakSubscriber(threading.Thread):
    """Everything on the bus, raw: holes, and what recovery checks need."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True, name="soak-subscriber")
        self.socket = sockets.subscriber(endpoint, [b""], sockets.DEFAULT_HWM)
        self.holes = Holes()
        self.data_tr: dict[str, int] = defaultdict(int)  # provider -> latest handler `tr`
        self.book: dict[BookKey, str] = {}  # book -> state
        self.bbo_ns: dict[BookKey, int] = defaultdict(int)  # book -> last bbo received
        self.book_states: Counter = Counter()  # book_status events by state
        self.beat_epoch: dict[str, int] = {}  # process -> epoch of its latest heartbeat
        self.stopping = threading.Event()

    def describe(self) -> str:
        return (f"{self.holes.messages} messages, data tr {dict(self.data_tr)}, books "
                f"{self.book}, bbo {dict(self.bbo_ns)}, heartbeats {sorted(self.beat_epoch)}")

    def run(self) -> None:
        decode = msgspec.msgpack.Decoder(Stamp).decode
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(100):
                continue
            while True:
                try:
                    topic, payload = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                now = time.time_ns()
                stamp = decode(payload)
                self.holes.see(topic, stamp.e, stamp.q, now)
                kind, source, symbol = topic.decode(errors="replace").rstrip("|").split(".", 2)
                if kind in ("trade", "quote", "book_delta") and source in HANDLER:
                    self.data_tr[source] = max(self.data_tr[source], stamp.tr)
                elif kind == "book_status" and source in BOOKS:
                    self.book[source, symbol] = stamp.st
                    self.book_states[stamp.st] += 1
                elif kind == "bbo" and source in BOOKS:
                    self.bbo_ns[source, symbol] = now
                elif kind == "heartbeat":
                    self.beat_epoch[source] = stamp.e
        self.socket.close(linger=0)


def sim_control(port: int, action: str, query: str = "") -> dict:
    """A simulator's answer to a test control request (handlers.common.simcontrol)."""
    url = f"http://127.0.0.1:{port}/control/{action}" + (f"?{query}" if query else "")
    try:
        with urlopen(url, timeout=5) as answer:
            return json.load(answer)
    except HTTPError as refused:
        with refused:
            raise RuntimeError(f"{url}: {refused.code} {refused.read()[:300]!r}") from None


def book_keys() -> list[BookKey]:
    return [(provider, symbol) for provider, symbols in BOOKS.items() for symbol in symbols]


def until(fetch: Callable[[], T], done: Callable[[T], bool], deadline: float) -> T:
    """`fetch()` every POLL_S until `done` says yes of its value or the deadline (monotonic)
    has passed; its last value."""
    while True:
        value = fetch()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(POLL_S)


def as_book(bids: list, asks: list) -> Book:
    return ({float(p): float(q) for p, q in bids}, {float(p): float(q) for p, q in asks})


def difference(held: Book, true: Book) -> str:
    """Where a book differs from the true one: per side, how many levels, and the best of them."""
    parts = []
    for side, mine, theirs, best in (("bids", held[0], true[0], max),
                                     ("asks", held[1], true[1], min)):
        wrong = [p for p in set(mine) | set(theirs) if mine.get(p) != theirs.get(p)]
        if wrong:
            price = best(wrong)
            parts.append(f"{side}: {len(wrong)} levels differ, the best at {price:g}: "
                         f"{mine.get(price, 0):g} held, {theirs.get(price, 0):g} true")
    return "; ".join(parts)


def name(key: BookKey) -> str:
    return f"{key[0]} {key[1]}"


def state(answer: dict) -> str:
    """A builder's answer's book state, or why there is none."""
    return answer.get("state") or answer.get("reason", "no answer")


def live(answer: dict) -> bool:
    return answer.get("state") == "live"


def all_live(answers: dict[BookKey, dict]) -> bool:
    return all(map(live, answers.values()))


def not_live(answers: dict[BookKey, dict]) -> dict[str, str]:
    """Each book that is not live, and its state."""
    return {name(key): state(a) for key, a in answers.items() if not live(a)}


class BookCheck:
    """The books' invariant end to end: with the simulators quiet, every book the builder says
    is live equals the simulator's true book (see the module's docstring)."""

    def __init__(self, endpoint: str, ports: dict[str, int]) -> None:
        self.endpoint, self.ports = endpoint, ports

    def check(self) -> dict:
        """{"books", "live", "equal", "mismatches", "never_live", "not_live_at_start",
        "not_live_while_quiet", "quiets", "seconds"}."""
        began = time.monotonic()
        deadline = began + LIVE_TIMEOUT_S
        at_start = not_live(self.answers())
        while_quiet: dict[str, str] = {}
        quiets = 0
        try:
            while True:
                before = until(self.answers, all_live, deadline)
                quiets += 1
                truth = self.quiet()
                answers = until(self.answers, lambda a: self.settled(a, truth),
                                time.monotonic() + EQUAL_TIMEOUT_S)
                self.still(truth)
                if all_live(answers) or not all_live(before) or time.monotonic() >= deadline:
                    break  # all live, or past the deadline: the live ones are compared
                while_quiet.update(not_live(answers))
                self.resume()  # a book went stale while quiet: let the market move, try again
        finally:
            self.resume()
        return {**self.verdict(answers, truth), "quiets": quiets,
                "not_live_at_start": at_start, "not_live_while_quiet": while_quiet,
                "seconds": round(time.monotonic() - began, 1)}

    def answers(self) -> dict[BookKey, dict]:
        return {key: self.ask(*key) for key in book_keys()}

    def ask(self, provider: str, symbol: str) -> dict:
        try:
            return request_book(self.endpoint, provider, symbol, 0, timeout=2.0)
        except NoBuilder as exc:
            return {"error": str(exc), "reason": "no builder"}

    def true_book(self, provider: str, symbol: str) -> Book:
        where = {"symbol": symbol.replace("-", "")} if provider == "binance" else {
            "pair": symbol} if provider == "kraken" else {"product": symbol}
        answer = sim_control(self.ports[provider], "book",
                             urlencode({**where, "depth": TRUE_DEPTH[provider]}))
        return as_book(answer["bids"], answer["asks"])

    def quiet(self) -> dict[BookKey, Book]:
        """Stop the markets; their true books, which no longer move."""
        for provider in BOOKS:
            sim_control(self.ports[provider], "quiet", f"seconds={QUIET_S:g}")
        return {key: self.true_book(*key) for key in book_keys()}

    def resume(self) -> None:
        """The markets move again (a quiet of a millisecond ends the quiet)."""
        for provider in BOOKS:
            sim_control(self.ports[provider], "quiet", "seconds=0.001")

    def still(self, truth: dict[BookKey, Book]) -> None:
        """The true books did not move while quiet: else nothing was compared."""
        moved = [name(key) for key, book in truth.items() if self.true_book(*key) != book]
        if moved:
            raise RuntimeError(f"the simulators' books moved while quiet: {moved}")

    @staticmethod
    def settled(answers: dict[BookKey, dict], truth: dict[BookKey, Book]) -> bool:
        """No live book differs from the true one (any other is stale, or resyncing)."""
        return all(not live(a) or as_book(a["bids"], a["asks"]) == truth[key]
                   for key, a in answers.items())

    @staticmethod
    def verdict(answers: dict[BookKey, dict], truth: dict[BookKey, Book]) -> dict:
        held = {key: as_book(a["bids"], a["asks"]) for key, a in answers.items() if live(a)}
        mismatches = [{"provider": key[0], "symbol": key[1],
                       "difference": difference(book, truth[key])}
                      for key, book in held.items() if book != truth[key]]
        return {"books": len(answers), "live": len(held),
                "equal": len(held) - len(mismatches), "mismatches": mismatches,
                "never_live": not_live(answers)}


class Soak:
    def __init__(self, procs: Processes, args: argparse.Namespace) -> None:
        self.procs, self.args = procs, args
        self.ports = {"alpaca": free_port(), "binance": free_port(), "coinbase": free_port(),
                      "kraken": free_port()}
        self.control = f"ipc://{procs.run_dir}/control"
        self.books = BookCheck(f"ipc://{procs.run_dir}/books", self.ports)
        self.checks: list[dict] = []
        self.recordings = procs.run_dir / "recordings"
        self.injected: list[Injected] = []
        self.children: dict = {}
        self.lives: dict[tuple[str, int], list[dict]] = {}  # (name, pid) -> first, ... latest

    def config(self) -> Path:
        a, b, c = self.ports["alpaca"], self.ports["binance"], self.ports["coinbase"]
        k = self.ports["kraken"]
        sim = 'host = "127.0.0.1"\nport = {port}\nrate = {rate}\nsymbols = {symbols}\n'
        text = f"""[bus]
publish = "ipc://{{run_dir}}/publish"
subscribe = "ipc://{{run_dir}}/subscribe"
[supervisor]
control = "ipc://{{run_dir}}/control"
[[children]]
name = "alpaca-sim"
run = "tickmesh.handlers.alpaca.sim.server"
[children.settings]
{sim.format(port=a, rate=self.args.alpaca_rate, symbols=json.dumps(ALPACA_SYMBOLS))}
[[children]]
name = "binance-sim"
run = "tickmesh.handlers.binance.sim.server"
[children.settings]
{sim.format(port=b, rate=self.args.binance_rate, symbols=json.dumps(BINANCE_SYMBOLS))}
[[children]]
name = "coinbase-sim"
run = "tickmesh.handlers.coinbase.sim.server"
[children.settings]
{sim.format(port=c, rate=self.args.coinbase_rate, symbols=json.dumps(COINBASE_SYMBOLS))}
[[children]]
name = "kraken-sim"
run = "tickmesh.handlers.kraken.sim.server"
[children.settings]
{sim.format(port=k, rate=self.args.kraken_rate, symbols=json.dumps(KRAKEN_SYMBOLS))}
[[children]]
name = "books"
run = "tickmesh.consumers.books"
[children.settings]
snapshot_endpoint = "ipc://{{run_dir}}/books"
[[children]]
name = "recorder"
run = "tickmesh.consumers.recorder"
[children.settings]
directory = "{self.recordings}"
[[children]]
name = "alpaca"
run = "tickmesh.handlers.alpaca.handler"
after = ["alpaca-sim"]
[children.settings]
url = "ws://127.0.0.1:{a}/v2/iex"
encoding = "msgpack"
symbols = {json.dumps(ALPACA_SYMBOLS)}
channels = ["trades", "quotes"]
[[children]]
name = "binance"
run = "tickmesh.handlers.binance.handler"
after = ["binance-sim"]
[children.settings]
url = "ws://127.0.0.1:{b}/stream"
rest_url = "http://127.0.0.1:{b}"
symbols = {json.dumps(BINANCE_SYMBOLS)}
[[children]]
name = "coinbase"
run = "tickmesh.handlers.coinbase.handler"
after = ["coinbase-sim"]
[children.settings]
url = "ws://127.0.0.1:{c}"
symbols = {json.dumps(COINBASE_SYMBOLS)}
[[children]]
name = "kraken"
run = "tickmesh.handlers.kraken.handler"
after = ["kraken-sim"]
[children.settings]
url = "ws://127.0.0.1:{k}"
symbols = {json.dumps(KRAKEN_SYMBOLS)}
depth = 1000
"""
        path = self.procs.run_dir / "soak.toml"
        path.write_text(text)
        return path

    def status(self) -> dict:
        try:
            return request_status(self.control, timeout=2.0)["children"]
        except NoSupervisor:
            return {}

    def recovered(self, sub: SoakSubscriber, since_ns: int, epochs: dict[str, int]) -> bool:
        fresh = all(sub.data_tr[p] > since_ns for p in HANDLER)
        books = all(sub.book.get(key, "live") == "live" and sub.bbo_ns[key] > since_ns
                    for key in book_keys())  # went live before we subscribed, or since
        renewed = all(sub.beat_epoch.get(name) != epoch for name, epoch in epochs.items())
        return fresh and books and renewed

    def inject(self, fault: Fault, sub: SoakSubscriber) -> Injected:
        children = self.status()
        renew = fault.target if fault.kind in ("kill", "restart") and fault.target != "forwarder"\
            else None
        epochs = {renew: sub.beat_epoch.get(renew, 0)} if renew else {}
        start = time.time_ns()
        if fault.kind == "kill":
            os.kill(children[fault.target]["pid"], signal.SIGKILL)
        elif fault.kind == "restart":
            request_restart(self.control, fault.target, timeout=5.0)
        else:
            sim_control(self.ports[fault.target], fault.kind, fault.query)
        done = Injected(fault, start, start + int(fault.seconds * 1e9))
        deadline = time.monotonic() + fault.seconds + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if time.time_ns() > done.end_ns and self.recovered(sub, done.end_ns, epochs):
                done.recovered_ns = time.time_ns()
                break
        self.injected.append(done)
        took = (f"recovered in {(done.recovered_ns - done.end_ns) / 1e9:.2f} s"
                if done.recovered_ns else "NOT recovered")
        print(f"  {fault.name}: {took}", flush=True)
        return done

    def check_books(self, at: str) -> None:
        check = {"at": at, **self.books.check()}
        self.checks.append(check)
        print(f"  books {at}: {check['equal']} of {check['live']} live books equal to the "
              f"true book; not live: {len(check['not_live_at_start'])} at the start, "
              f"{len(check['not_live_while_quiet'])} while quiet, {len(check['never_live'])} "
              f"never ({check['seconds']} s, quiet {check['quiets']}x)", flush=True)

    def sample(self) -> dict[str, dict]:
        """RSS (MB) and open fds of the supervisor and each child, with the child's pid; each
        process's first and latest samples are kept in `lives`."""
        self.children = self.status() or self.children
        pids = {"supervisor": self.supervisor.pid}
        pids.update({name: child["pid"] for name, child in self.children.items()
                     if child.get("pid")})
        out = {}
        for name, pid in pids.items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rss_kb = int(next(l for l in status.splitlines()
                                  if l.startswith("VmRSS")).split()[1])
                out[name] = {"pid": pid, "rss_mb": round(rss_kb / 1024, 1),
                             "fds": len(os.listdir(f"/proc/{pid}/fd")), "t": time.monotonic()}
            except (OSError, StopIteration):
                continue
            self.lives.setdefault((name, pid), [out[name]]).append(out[name])
        return out

    def run(self) -> dict:
        duration = self.args.minutes * 60
        self.supervisor = self.procs.start(
            "supervisor", [sys.executable, "-m", "tickmesh.cli", "run", str(self.config())],
            env={"TICKMESH_RUN_DIR": str(self.procs.run_dir)})
        children = lambda: (s := self.status()) and all(  # noqa: E731
            c["state"] == "running" and c["ready"] for c in s.values()) and s
        wait_for(children, "every child to be running", timeout=60)
        sub = SoakSubscriber(f"ipc://{self.procs.run_dir}/subscribe")
        sub.start()
        try:
            t0 = time.time_ns()
            try:
                wait_for(lambda: self.recovered(sub, t0, {}), "data, live books", 60)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: {sub.describe()}") from None
            time.sleep(WARMUP_S)
            start_sample = self.sample()
            began, before = time.monotonic(), sub.holes.messages
            every = self.args.every or max(3.0, min(15.0, (duration - TAIL_S) / len(FAULTS)))
            count = int((duration - TAIL_S) // every)
            for index in range(count):
                time.sleep(max(0.0, began + index * every - time.monotonic()))
                self.sample()
                self.inject(FAULTS[index % len(FAULTS)], sub)
                time.sleep(1.0)  # at least this long after a recovery
                if (index + 1) % CHECK_EVERY == 0 and index + 1 < count:
                    self.check_books(f"after fault {index + 1}")
            time.sleep(max(0.0, duration - (time.monotonic() - began)))
            end_sample = self.sample()
            self.seconds = time.monotonic() - began
            self.rate = (sub.holes.messages - before) / self.seconds
            self.check_books("end")
        finally:
            sub.stopping.set()
            sub.join(5)
            stop_supervisor(self.procs, self.supervisor)
        return self.report(sub, start_sample, end_sample)

    def report(self, sub: SoakSubscriber, start: dict, end: dict) -> dict:
        windows = [(i.window(), i.fault) for i in self.injected]

        def losses(holes: list, recording: bool) -> tuple[int, int, list]:
            excused, lost, examples = 0, 0, []
            for topic, missed, t0, t1 in holes:
                who = publisher(topic)
                if any(t0 <= w[1] and t1 >= w[0]
                       and {"*", who} & set(f.touches + (f.recording_only if recording else ()))
                       for w, f in windows):
                    excused += 1
                else:  # an unexcused new epoch counts as one (its losses are unknown)
                    lost += missed if missed > 0 else 1
                    examples.append(f"{topic.decode(errors='replace')} "
                                    f"{'new epoch' if missed < 0 else f'{missed} missed'}")
            return excused, lost, examples[:5]

        recorded = Holes()
        gap_records = 0
        decode = msgspec.msgpack.Decoder(Stamp).decode
        for record in Recording(self.recordings).records():
            if record.type == MESSAGE:
                stamp = decode(record.data)
                recorded.see(record.topic, stamp.e, stamp.q, record.recv_ns)
            elif record.type == GAP:
                gap_records += 1
        times = [(i.recovered_ns - i.end_ns) / 1e9 for i in self.injected if i.recovered_ns]
        sub_ok, sub_lost, sub_examples = losses(sub.holes.holes, False)
        rec_ok, rec_lost, rec_examples = losses(recorded.holes, True)
        processes = {}
        for name in sorted(set(start) | set(end)):
            life = max((life for (n, _), life in self.lives.items() if n == name),
                       key=lambda life: life[-1]["t"] - life[0]["t"])
            first, last = life[0], life[-1]
            span = last["t"] - first["t"]
            flat = None  # judged on its longest-lived process, if it lived a minute
            if span >= FLAT_MIN_SPAN_S:
                flat = (last["rss_mb"] <= first["rss_mb"] * 1.25 + 8
                        and last["fds"] <= first["fds"] + 4)
            processes[name] = {"start": start.get(name), "end": end.get(name),
                               "restarts": self.children.get(name, {}).get("restarts", 0),
                               "flat": flat, "flat_judged_over_s": round(span)}
        return {
            "minutes": self.args.minutes, "alpaca_rate": self.args.alpaca_rate,
            "binance_rate": self.args.binance_rate, "coinbase_rate": self.args.coinbase_rate,
            "kraken_rate": self.args.kraken_rate,
            "seconds": round(self.seconds, 1),
            "events_per_s": round(self.rate),
            "faults_injected": len(self.injected), "faults_recovered": len(times),
            "recovery_median_s": round(statistics.median(times), 2) if times else None,
            "recovery_max_s": round(max(times), 2) if times else None,
            "faults": [{"fault": i.fault.name, "recovery_s": round(
                (i.recovered_ns - i.end_ns) / 1e9, 2) if i.recovered_ns else None}
                for i in self.injected],
            "subscriber": {"messages": sub.holes.messages, "holes_excused": sub_ok,
                           "lost": sub_lost, "examples": sub_examples},
            "recording": {"messages": recorded.messages, "gap_records": gap_records,
                          "holes_excused": rec_ok, "lost": rec_lost, "examples": rec_examples},
            "books": books_summary(self.checks, sub.book_states),
            "processes": processes,
        }


def books_summary(checks: list[dict], states: Counter) -> dict:
    """The checks of the books, and their sums."""
    return {
        "checks": checks,
        "books": sum(c["books"] for c in checks),
        "live": sum(c["live"] for c in checks),
        "equal": sum(c["equal"] for c in checks),
        "mismatches": [{"at": c["at"], **m} for c in checks for m in c["mismatches"]],
        "not_live_at_start": sum(len(c["not_live_at_start"]) for c in checks),
        "not_live_while_quiet": sum(len(c["not_live_while_quiet"]) for c in checks),
        "never_live": [f"{book} ({was}, {c['at']})" for c in checks
                       for book, was in c["never_live"].items()],
        "book_status_events": dict(states),
    }


def failures(result: dict) -> list[str]:
    """Why the soak failed: empty if it passed."""
    problems = []
    if result["faults_recovered"] != result["faults_injected"]:
        problems.append(f"{result['faults_injected'] - result['faults_recovered']} faults "
                        "not recovered")
    problems += [f"{result[where]['lost']} events lost in the {where}"
                 for where in ("subscriber", "recording") if result[where]["lost"]]
    books = result["books"]
    problems += [f"{m['provider']} {m['symbol']} live but not the true book ({m['at']}): "
                 f"{m['difference']}" for m in books["mismatches"]]
    problems += [f"book {book} not live {LIVE_TIMEOUT_S:g} s into its check"
                 for book in books["never_live"]]
    return problems


def stop_supervisor(procs: Processes, supervisor) -> None:
    """SIGTERM: the supervisor stops its children in order (and the recorder writes its batch);
    what is left after 30 s is killed by Processes.stop."""
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=30)
        except Exception:
            pass
    procs.stop(supervisor)


def print_table(result: dict) -> None:
    books = result["books"]
    rows = [
        ("events on the bus (soak subscriber)",
         f"{result['events_per_s']:,}/s over "
         f"{result['seconds']:.0f} s"),
        ("faults injected / recovered",
         f"{result['faults_injected']} / {result['faults_recovered']}"),
        ("time to recover, median / max",
         f"{result['recovery_median_s']} s / {result['recovery_max_s']} s"),
        ("events lost outside holes: subscriber",
         f"{result['subscriber']['lost']} (of {result['subscriber']['messages']:,}; "
         f"{result['subscriber']['holes_excused']} holes in fault windows)"),
        ("events lost outside holes: recording",
         f"{result['recording']['lost']} (of {result['recording']['messages']:,}; "
         f"{result['recording']['holes_excused']} holes in fault windows)"),
        ("live books equal to the true book (quiet)",
         f"{books['equal']} of {books['live']} live ({books['books']} asked, "
         f"{len(books['checks'])} checks); {len(books['mismatches'])} not"),
        ("books not live: at a check's start / quiet / never",
         f"{books['not_live_at_start']} / {books['not_live_while_quiet']} / "
         f"{len(books['never_live'])}"),
        ("book_status events over the soak",
         ", ".join(f"{n} {s}" for s, n in sorted(books["book_status_events"].items()))),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")
    print()
    by_fault: dict[str, list] = defaultdict(list)
    for fault in result["faults"]:
        by_fault[fault["fault"]].append(fault["recovery_s"])
    lines = [("fault", "injected", "recovered", "median s", "max s")]
    for name, times in by_fault.items():
        done = [t for t in times if t is not None]
        lines.append((name, str(len(times)), str(len(done)),
                      f"{statistics.median(done):.2f}" if done else "-",
                      f"{max(done):.2f}" if done else "-"))
    _print_lines(lines)
    print()
    lines = [("process", "rss MB start", "rss MB end", "fds start", "fds end", "restarts",
              "flat")]
    for name, p in result["processes"].items():
        s, e = p["start"] or {}, p["end"] or {}
        flat = ("-" if p["flat"] is None else "yes" if p["flat"] else "NO") + \
            f" ({p['flat_judged_over_s']} s)"
        lines.append((name, str(s.get("rss_mb", "-")), str(e.get("rss_mb", "-")),
                      str(s.get("fds", "-")), str(e.get("fds", "-")), str(p["restarts"]), flat))
    _print_lines(lines)
    for where in ("subscriber", "recording"):
        for example in result[where]["examples"]:
            print(f"lost ({where}): {example}")


def _print_lines(lines: list[tuple[str, ...]]) -> None:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--alpaca-rate", type=float, default=5000.0,
                        help="Alpaca simulator messages per second")
    parser.add_argument("--binance-rate", type=float, default=200.0,
                        help="Binance simulator book changes per second per symbol")
    parser.add_argument("--coinbase-rate", type=float, default=20.0,
                        help="Coinbase simulator trades per second per product (its books "
                        "change every 25 ms)")
    parser.add_argument("--kraken-rate", type=float, default=20.0,
                        help="Kraken simulator trades per second per pair (its books change "
                        "every 25 ms)")
    parser.add_argument("--every", type=float, default=0.0,
                        help="seconds from one fault to the next (default: 15; less for a short "
                        "run, so that it injects each kind once; at least 3)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "soak.json")
    args = parser.parse_args()
    print(f"soak: {args.minutes:g} min, {len(FAULTS)} kinds of fault in turn", flush=True)
    try:
        with Processes() as procs:
            result = Soak(procs, args).run()
    except KeyboardInterrupt:
        sys.exit("soak: interrupted; every process it started is stopped")
    print_table(result)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {args.out}")
    problems = failures(result)
    for problem in problems:
        print(f"soak: FAILED: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
