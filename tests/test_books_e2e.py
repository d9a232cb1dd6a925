"""End-to-end acceptance of the L2 books: simulator -> handler -> forwarder -> order-book builder
(consumers.books), each a real process on real sockets. The builder's books, asked through its
snapshot service (consumers.books.snapshots.request_book, or `tickmesh book`), are compared with
the simulator's TRUE book (/control/book) once the market stands still (/control/quiet), or
with the book a recording implies (computed here, independently: snapshot, then updates).

- Binance: over 100,000 book changes across 16 symbols at a raised rate, with provider-side gaps
  (/control/gap) and bus drops (the builder, with a tiny receive queue on a bus with a tiny
  high-water mark, SIGSTOPped while the handler keeps publishing): each detected and resynced,
  and every book equal to the true one at the end.
- Coinbase: a lost message on one product resynced, the books equal to the true ones.
- Replays of recorded Binance (combined-stream frames and REST snapshots) and Coinbase frames
  end in the books the recordings imply.
- A late joiner (`tickmesh book binance BTC-USDT --json --timeout 1`) gets a live, internally
  consistent book, the very book the bus implies at the sequence number it names.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tickmesh.bus import BookDelta, BookSnapshot, Publisher, Status
from tickmesh.bus.events import BookStatus, encode
from tickmesh.bus.sockets import BusConfig
from tickmesh.consumers.books.snapshots import NoBuilder, request_book
from tickmesh.handlers.binance import wire as binance_wire
from tests import simcontrol, simulators
from tests.books import Book, apply_levels
from tests.buslog import BusLog
from tests.conftest import wait_for_forwarder
from tests.supervised import TICKMESH, child_toml, env, write_config
from tests.waiting import wait_until

BINANCE_SIM = "tickmesh.handlers.binance.sim.server"
BINANCE_DEPTH = {"channels": ["depth"], "depth_limit": 500}
"""The Binance handler's settings here: depth only, and deep snapshots."""
COINBASE_SIM = "tickmesh.handlers.coinbase.sim.server"
PROBE = "PROBE"  # a book the test publishes itself, to know the builder's subscription is in


# --- the chain ------------------------------------------------------------------------------------

def start_forwarder(spawn_child, run_dir: Path, hwm: int | None = None) -> BusConfig:
    bus = BusConfig(f"ipc://{run_dir}/publish", f"ipc://{run_dir}/subscribe",
                    **({"hwm": hwm, "subscriber_hwm": hwm} if hwm else {}))
    spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=bus)
    wait_for_forwarder(bus)
    return bus


def start_builder(spawn_child, bus: BusConfig, endpoint: str, provider: str, **settings):
    settings = {"snapshot_endpoint": endpoint, "providers": [provider], **settings}
    proc = spawn_child("tickmesh.consumers.books", "books", settings, bus=bus)
    wait_until(lambda: _answers(endpoint, provider), timeout=15,
               what="the builder's snapshot service")
    return proc


def _answers(endpoint: str, provider: str) -> bool:
    try:
        request_book(endpoint, provider, "nothing", 0, timeout=0.5)
        return True
    except NoBuilder:
        return False


def subscribed(bus: BusConfig, endpoint: str, provider: str, log: BusLog | None = None) -> None:
    """Publish a probe snapshot until the builder (and the test's log) have it: from then on
    both receive what the handler publishes (a replay publishes its books once)."""
    publisher = Publisher(bus.publish)
    try:
        def arrived() -> bool:
            now = time.time_ns()
            publisher.publish(BookSnapshot(provider=provider, symbol=PROBE, ts_event=now,
                                           ts_recv=now, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)],
                                           generation=1))
            known = "error" not in request_book(endpoint, provider, PROBE, 0, timeout=5)
            seen = log is None or bool(log.read() and any(
                isinstance(e, BookSnapshot) and e.symbol == PROBE for e in log.events))
            return known and seen

        wait_until(arrived, timeout=15, what="the builder's subscription", interval=0.1)
    finally:
        publisher.close()


def ask(endpoint: str, provider: str, symbol: str, depth: int = 0) -> dict[str, Any]:
    return request_book(endpoint, provider, symbol, depth, timeout=5)


def as_book(answer: dict[str, Any]) -> Book:
    return dict(map(tuple, answer["bids"])), dict(map(tuple, answer["asks"]))


def levels(side: dict[float, float], descending: bool) -> list[list[float]]:
    return [[price, side[price]] for price in sorted(side, reverse=descending)]


def all_live(endpoint: str, provider: str, symbols: list[str]) -> dict[str, dict] | None:
    """Every symbol's book (top level only) once all of them are live, else None."""
    answers = {s: ask(endpoint, provider, s, depth=1) for s in symbols}
    return answers if all(a.get("state") == "live" for a in answers.values()) else None


def equal_books(endpoint: str, provider: str, expected: dict[str, Book]) -> dict | None:
    """The builder's whole books once every one is live and equal to `expected`, else None."""
    answers = {symbol: ask(endpoint, provider, symbol) for symbol in expected}
    same = all(answer.get("state") == "live" and as_book(answer) == expected[symbol]
               for symbol, answer in answers.items())
    return answers if same else None


def assert_consistent(answer: dict[str, Any]) -> None:
    """Bids strictly descending, asks strictly ascending, sizes positive, not crossed."""
    bids, asks = answer["bids"], answer["asks"]
    assert bids and asks, answer
    assert all(a[0] > b[0] for a, b in zip(bids, bids[1:])), bids
    assert all(a[0] < b[0] for a, b in zip(asks, asks[1:])), asks
    assert all(size > 0 for _, size in bids + asks)
    assert bids[0][0] < asks[0][0], (bids[0], asks[0])


def book_statuses(log: BusLog, symbol: str, since: int = 0) -> list[tuple[str, str]]:
    return [(s.state, s.message) for s in log.of(BookStatus, since) if s.symbol == symbol]


# --- Binance --------------------------------------------------------------------------------------

def start_binance_sim(spawn_child, **settings) -> int:
    port, _ = simulators.start(spawn_child, BINANCE_SIM, "binance-sim", None, settings,
                               ready=simcontrol.serving)
    return port


def binance_true_book(port: int, symbol: str) -> Book:
    answer = simcontrol.control(port, "book", symbol=symbol.replace("-", ""), depth=5000)
    return ({float(p): float(q) for p, q in answer["bids"]},
            {float(p): float(q) for p, q in answer["asks"]})


def update_ids(port: int) -> dict[str, int]:
    return simcontrol.control(port, "stats")["update_ids"]


SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "LTC-USDT", "LINK-USDT", "AVAX-USDT",
           "ETH-BTC", "BNB-USDT", "XRP-USDT", "DOGE-USDT", "ADA-USDT", "DOT-USDT", "ATOM-USDT",
           "UNI-USDT", "SOL-BTC", "LTC-BTC"]
RATE = 1250  # book changes a second per symbol: 20,000 a second in all
TOTAL_CHANGES = 100_000
BUS_HWM = 50  # messages the forwarder queues per subscriber (and the handler per publisher)
BUILDER_RCVHWM = 10  # messages the builder's socket queues
GAPPED = ("SOL-USDT", "LINK-USDT", "ETH-BTC")  # symbols that lose a depthUpdate at the venue


def socket_buffer() -> int:
    """Bytes the kernel buffers on an ipc (unix stream) socket by default."""
    return int(Path("/proc/sys/net/core/wmem_default").read_text())


def past_the_queues(deltas: list[BookDelta]) -> bool:
    """Far more deltas than the way to a stopped builder holds: the forwarder's queue for it
    (BUS_HWM messages), the ipc socket's kernel buffer (bytes), the builder's own queue."""
    queued = BUS_HWM + BUILDER_RCVHWM
    sizes = [len(encode(d)) for d in deltas]
    return len(sizes) >= 3 * queued and sum(sizes) >= socket_buffer() + 2 * queued * (
        sum(sizes) / len(sizes))


class BinanceRun:
    """The Binance chain under test, and the faults the test injects into it."""

    def __init__(self, port: int, log: BusLog, endpoint: str, builder: subprocess.Popen):
        self.port, self.log, self.endpoint, self.builder = port, log, endpoint, builder

    def live(self, timeout: float = 20) -> dict[str, dict]:
        return self.log.until(lambda _: all_live(self.endpoint, "binance", SYMBOLS),
                              what="every book live", timeout=timeout)

    def generations(self) -> dict[str, int]:
        return {s: a["generation"] for s, a in self.live().items()}

    def settled(self) -> None:
        """Every book live, and no resubscribe by the handler for its last three heartbeats
        (two seconds): none is on its way. (A resync that starts once the market is quiet
        would wait for a depth event that never comes: Binance's sync needs one after the
        snapshot.)"""
        def quiet_handler(_) -> bool:
            beats = [b.metric("resubscribes") for b in self.log.heartbeats("binance")]
            return len(beats) >= 3 and len(set(beats[-3:])) == 1

        self.log.until(lambda events: quiet_handler(events) and all_live(
            self.endpoint, "binance", SYMBOLS), what="the handler's resyncs over", timeout=20)

    def provider_gap(self, symbol: str) -> None:
        """Lose one depthUpdate of `symbol` at the venue: the handler must see the gap and
        resync the symbol, and the builder follow it (resyncing, then live on a new
        generation). If a resync of the symbol that was already on its way swallowed the lost
        update (its snapshot came after it), the gap goes unseen, rightly: lose another."""
        before = self.generations()
        for _ in range(3):
            mark = self.log.mark()
            simcontrol.control(self.port, "gap", symbol=symbol.replace("-", ""))
            if self.log.until(lambda _: self._after_gap(symbol, mark),
                              what=f"{symbol}'s gap detected and resynced", timeout=20) == "gap":
                break
        else:
            raise AssertionError(f"{symbol}: three gaps, none seen as a gap")
        after = self.generations()
        assert after[symbol] > before[symbol], (symbol, before, after)

    def _after_gap(self, symbol: str, mark: int) -> str:
        """"gap" once the handler said it saw a gap, and the builder followed (resyncing, then
        live); "other" if a resync for another reason made the book live again first."""
        said = [s.message for s in self.log.of(Status, mark)
                if s.state == "resyncing" and s.symbol == symbol]
        states = [state for state, _ in book_statuses(self.log, symbol, mark)]
        if not said or "resyncing" not in states or "live" not in states[
                states.index("resyncing"):]:
            return ""
        return "gap" if any("gap" in message for message in said) else "other"

    def bus_drop(self) -> float:
        """Stop the builder while the handler goes on publishing far more than the queues hold,
        then let it go on: the builder must see the gaps (book_status stale "bus gap", its
        bus_messages_missed grows), ask for resyncs, and every book come back live on a new
        generation. Returns how many messages the builder says it lost."""
        before = self.generations()
        mark = self.log.mark()
        missed = self.log.metric("books", "bus_messages_missed")
        self.builder.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: stopped(self.builder.pid), what="the builder stopped")
            stop = self.log.mark()
            self.log.until(lambda _: past_the_queues(self.log.of(BookDelta, stop)),
                           what="the handler publishing while the builder is stopped")
        finally:
            self.builder.send_signal(signal.SIGCONT)

        def detected(_) -> bool:
            stale = {s.symbol for s in self.log.of(BookStatus, mark)
                     if s.state == "stale" and s.message.startswith("bus gap")}
            grown = self.log.metric("books", "bus_messages_missed", mark) > missed
            return stale if grown else None

        stale = self.log.until(detected, what="the bus drop detected", timeout=20)
        lost = self.log.metric("books", "bus_messages_missed", mark) - missed
        after = self.generations()
        assert all(after[s] > before[s] for s in stale), (stale, before, after)
        return lost


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"


@pytest.mark.timeout(120)
def test_binance_100k_changes_with_provider_gaps_and_bus_drops_end_in_the_true_books(
        spawn_child, start_handler, run_dir):
    started = time.monotonic()
    bus = start_forwarder(spawn_child, run_dir, hwm=BUS_HWM)
    endpoint = f"ipc://{run_dir}/books"
    port = start_binance_sim(spawn_child, symbols=SYMBOLS, rate=RATE, seed=11)
    builder = start_builder(spawn_child, bus, endpoint, "binance", rcvhwm=BUILDER_RCVHWM)
    patterns = ["book_delta.binance", "status.binance", "book_status.binance", "heartbeat.books",
                "heartbeat.binance"]
    with BusLog(bus.subscribe, patterns) as log:
        start_handler("binance", port, bus=bus, symbols=SYMBOLS, **BINANCE_DEPTH)
        run = BinanceRun(port, log, endpoint, builder)
        run.live()
        first_ids = update_ids(port)

        def changes() -> int:
            return sum(update_ids(port)[s] - first_ids[s] for s in first_ids)

        gapped, lost = list(GAPPED), []
        for fault in ("gap", "drop", "gap", "drop", "gap"):
            if fault == "gap":
                run.provider_gap(gapped.pop(0))
            else:
                lost.append(run.bus_drop())
        wait_until(lambda: changes() >= TOTAL_CHANGES, timeout=40,
                   what=f"{TOTAL_CHANGES} book changes")
        run.settled()
        simcontrol.control(port, "quiet", seconds=120)  # the market stands still from here
        truth = {symbol: binance_true_book(port, symbol) for symbol in SYMBOLS}
        answers = log.until(lambda _: equal_books(endpoint, "binance", truth),
                            what="every builder book equal to the true book", timeout=20)
        total = changes()
        deltas = len(log.of(BookDelta))
        handler_resyncs = [s for s in log.of(Status) if s.state == "resyncing"]
    for symbol, answer in answers.items():
        bids, asks = truth[symbol]
        assert answer["bids"] == levels(bids, True) and answer["asks"] == levels(asks, False)
        assert_consistent(answer)
        top = ask(endpoint, "binance", symbol, depth=5)
        assert (top["bids"], top["asks"]) == (answer["bids"][:5], answer["asks"][:5])
        assert len(bids) >= 20 and len(asks) >= 20  # a real book, not a few levels
    assert truth == {s: binance_true_book(port, s) for s in SYMBOLS}  # it did stand still
    assert all(n > 0 for n in lost), lost
    assert {s.symbol for s in handler_resyncs if "gap" in s.message} >= set(GAPPED)
    print(f"\nbinance: {total} book changes, {deltas} deltas on the bus, bus drops lost {lost} "
          f"messages, {len(handler_resyncs)} handler resyncs, levels a side "
          f"{sorted(len(truth[s][0]) for s in SYMBOLS)}, {time.monotonic() - started:.1f} s")


# --- Coinbase -------------------------------------------------------------------------------------

PRODUCTS = ["BTC-USD", "ETH-USD"]


def coinbase_true_book(port: int, product: str) -> Book:
    answer = simcontrol.control(port, "book", product=product, depth=1000)
    return ({float(p): float(s) for p, s in answer["bids"]},
            {float(p): float(s) for p, s in answer["asks"]})


def test_coinbase_a_lost_message_is_resynced_and_the_books_equal_the_true_books(
        spawn_child, start_handler, run_dir):
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    port, _ = simulators.start(spawn_child, COINBASE_SIM, "coinbase-sim", None,
                               {"symbols": PRODUCTS, "rate": 20, "seed": 3})
    start_builder(spawn_child, bus, endpoint, "coinbase")
    patterns = ["status.coinbase", "book_status.coinbase", "book_delta.coinbase"]
    with BusLog(bus.subscribe, patterns) as log:
        start_handler("coinbase", port, bus=bus, symbols=PRODUCTS)
        before = log.until(lambda _: all_live(endpoint, "coinbase", PRODUCTS),
                           what="every book live")
        log.until(lambda _: all(sum(d.symbol == p for d in log.of(BookDelta)) >= 20
                                for p in PRODUCTS), what="20 deltas of every product")
        mark = log.mark()
        simcontrol.control(port, "gap", product="BTC-USD")
        log.until(lambda _: any(s.state == "resyncing" and s.symbol == "BTC-USD"
                                for s in log.of(Status, mark)), what="the handler resyncing")
        log.until(lambda _: [st for st, _ in book_statuses(log, "BTC-USD", mark)][-2:]
                  == ["resyncing", "live"], what="the builder's BTC-USD resyncing, then live")
        after = log.until(lambda _: all_live(endpoint, "coinbase", PRODUCTS),
                          what="every book live")
        simcontrol.control(port, "quiet", seconds=120)
        truth = {p: coinbase_true_book(port, p) for p in PRODUCTS}
        answers = log.until(lambda _: equal_books(endpoint, "coinbase", truth),
                            what="every builder book equal to the true book")
        statuses = {p: book_statuses(log, p, mark) for p in PRODUCTS}
    assert after["BTC-USD"]["generation"] > before["BTC-USD"]["generation"]
    assert after["ETH-USD"]["generation"] == before["ETH-USD"]["generation"]
    assert statuses["ETH-USD"] == []  # the other product never stopped being live
    for product, answer in answers.items():
        assert_consistent(answer)
        assert len(answer["bids"]) >= 20 and len(answer["asks"]) >= 20
    assert truth == {p: coinbase_true_book(port, p) for p in PRODUCTS}


# --- replays --------------------------------------------------------------------------------------

def binance_recording(path: Path, rng: random.Random) -> tuple[Path, Path, dict[str, Book]]:
    """Depth frames of two symbols, interleaved, each with a REST snapshot taken in the middle
    of the stream (its lastUpdateId inside one event's [U, u]); and the book each implies,
    computed as a reader of the recording would: the snapshot, then every event after it."""
    frames: list[tuple[int, str]] = []
    snapshots, implied = [], {}
    for native, mid in (("BTCUSDT", 100.0), ("ETHUSDT", 50.0)):
        true: Book = ({round(mid - 0.5 * i, 2): float(rng.randint(1, 50)) for i in range(1, 30)},
                      {round(mid + 0.5 * i, 2): float(rng.randint(1, 50)) for i in range(1, 30)})
        last = rng.randint(10_000, 90_000)
        events, snapshot = [], None
        snapshot_after = rng.randint(40, 80)  # events, then the snapshot in the next one
        for n in range(150):
            first, bids, asks = last + 1, {}, {}
            for _ in range(rng.randint(1, 6)):
                last += 1
                is_bid = rng.random() < 0.5
                ticks = rng.randint(1, 40)
                price = round(mid - 0.5 * ticks if is_bid else mid + 0.5 * ticks, 2)
                size = 0.0 if rng.random() < 0.25 else round(rng.uniform(0.001, 99), 3)
                apply_levels(true, [(price, size)] if is_bid else [],
                             [] if is_bid else [(price, size)])
                (bids if is_bid else asks)[price] = size
                if n == snapshot_after and snapshot is None and rng.random() < 0.5:
                    snapshot = (last, {s: dict(side) for s, side in zip("ba", true)})
            if n == snapshot_after and snapshot is None:
                snapshot = (last, {s: dict(side) for s, side in zip("ba", true)})
            events.append({"e": "depthUpdate", "E": 1_700_000_000_000 + 20 * n, "s": native,
                           "U": first, "u": last,
                           "b": [[f"{p:.2f}", f"{q:.3f}"] for p, q in bids.items()],
                           "a": [[f"{p:.2f}", f"{q:.3f}"] for p, q in asks.items()]})
        snapshot_id, sides = snapshot
        snapshots.append({"symbol": native, "response": {
            "lastUpdateId": snapshot_id,
            "bids": [[f"{p:.2f}", f"{q:.3f}"] for p, q in sorted(sides["b"].items(), reverse=True)],
            "asks": [[f"{p:.2f}", f"{q:.3f}"] for p, q in sorted(sides["a"].items())]}})
        book: Book = ({float(p): float(q) for p, q in snapshots[-1]["response"]["bids"]},
                      {float(p): float(q) for p, q in snapshots[-1]["response"]["asks"]})
        for event in events:
            if event["u"] > snapshot_id:
                apply_levels(book, [(float(p), float(q)) for p, q in event["b"]],
                             [(float(p), float(q)) for p, q in event["a"]])
        assert book == true  # the recording is self-consistent
        implied[native[:3] + "-USDT"] = book
        stream = binance_wire.stream_name(native, "depth")
        frames += [(e["E"], json.dumps({"stream": stream, "data": e})) for e in events]
    frames.sort(key=lambda frame: frame[0])  # the two symbols interleaved, as recorded
    frames_path, snapshots_path = path / "binance.jsonl", path / "binance-snapshots.jsonl"
    frames_path.write_text("\n".join(line for _, line in frames) + "\n")
    snapshots_path.write_text("\n".join(json.dumps(s) for s in snapshots) + "\n")
    return frames_path, snapshots_path, implied


def test_binance_replay_through_simulator_handler_and_builder_gives_the_implied_books(
        spawn_child, start_handler, run_dir, tmp_path):
    frames, snapshots, implied = binance_recording(tmp_path, random.Random(21))
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    symbols = sorted(implied)
    port = start_binance_sim(spawn_child, symbols=symbols, replay=str(frames),
                             snapshots=str(snapshots), speed=1.0)  # 3 s of frames
    start_builder(spawn_child, bus, endpoint, "binance")
    with BusLog(bus.subscribe, ["status.binance", "book_status.binance"]) as log:
        subscribed(bus, endpoint, "binance")  # the replay publishes each book once
        start_handler("binance", port, bus=bus, symbols=symbols, **BINANCE_DEPTH)
        answers = log.until(lambda _: equal_books(endpoint, "binance", implied),
                            what="the builder's books equal to the recording's")
        assert not [s for s in log.of(Status) if s.state == "resyncing"]
    for symbol, answer in answers.items():
        bids, asks = implied[symbol]
        assert answer["bids"] == levels(bids, True) and answer["asks"] == levels(asks, False)
        assert answer["kind"] == "book_delta"  # the snapshot, then deltas applied
        assert_consistent(answer)


COINBASE_TIME = "2024-03-01T12:00:%02d.%06dZ"


def coinbase_recording(path: Path, rng: random.Random) -> tuple[Path, dict[str, Book]]:
    """Frames as Coinbase sends them: each product's snapshot, then l2updates of the products
    interleaved; and the books they imply."""
    lines, implied = [], {}
    for product, mid in (("BTC-USD", 60_000.0), ("ETH-USD", 3_000.0)):
        bids = {mid - 0.01 * i: float(rng.randint(1, 9)) for i in range(1, 25)}
        asks = {mid + 0.01 * i: float(rng.randint(1, 9)) for i in range(1, 25)}
        lines.append(json.dumps({
            "type": "snapshot", "product_id": product,
            "bids": [[f"{p:.2f}", f"{s:.8f}"] for p, s in sorted(bids.items(), reverse=True)],
            "asks": [[f"{p:.2f}", f"{s:.8f}"] for p, s in sorted(asks.items())]}))
        implied[product] = ({float(f"{p:.2f}"): s for p, s in bids.items()},
                            {float(f"{p:.2f}"): s for p, s in asks.items()})
    for n in range(300):
        product, mid = rng.choice((("BTC-USD", 60_000.0), ("ETH-USD", 3_000.0)))
        changes = []
        for _ in range(rng.randint(1, 4)):
            side = rng.choice(("buy", "sell"))
            ticks = rng.randint(1, 40)
            price = f"{mid - 0.01 * ticks if side == 'buy' else mid + 0.01 * ticks:.2f}"
            size = "0" if rng.random() < 0.25 else f"{rng.uniform(0.0001, 5):.8f}"
            changes.append([side, price, size])
            book = implied[product]
            apply_levels(book, [(float(price), float(size))] if side == "buy" else [],
                         [] if side == "buy" else [(float(price), float(size))])
        lines.append(json.dumps({"type": "l2update", "product_id": product, "changes": changes,
                                 "time": COINBASE_TIME % (n // 100, n % 100)}))
    frames = path / "coinbase.jsonl"
    frames.write_text("\n".join(lines) + "\n")
    return frames, implied


def test_coinbase_replay_through_simulator_handler_and_builder_gives_the_implied_books(
        spawn_child, start_handler, run_dir, tmp_path):
    frames, implied = coinbase_recording(tmp_path, random.Random(33))
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    port, _ = simulators.start(spawn_child, COINBASE_SIM, "coinbase-sim", None,
                               {"symbols": PRODUCTS, "replay": str(frames)})
    start_builder(spawn_child, bus, endpoint, "coinbase")
    with BusLog(bus.subscribe, ["status.coinbase", "book_status.coinbase"]) as log:
        subscribed(bus, endpoint, "coinbase")
        start_handler("coinbase", port, bus=bus, symbols=PRODUCTS, stale_after=0)
        answers = log.until(lambda _: equal_books(endpoint, "coinbase", implied),
                            what="the builder's books equal to the recording's")
        assert not [s for s in log.of(Status) if s.state == "resyncing"]
    for product, answer in answers.items():
        bids, asks = implied[product]
        assert answer["bids"] == levels(bids, True) and answer["asks"] == levels(asks, False)
        assert answer["kind"] == "book_delta"  # the snapshot, then deltas applied
        assert_consistent(answer)


# --- a late joiner --------------------------------------------------------------------------------

def test_a_late_joiner_gets_a_live_consistent_binance_book_within_a_second(
        spawn, spawn_child, start_handler, run_dir):
    bus = start_forwarder(spawn_child, run_dir)
    endpoint = f"ipc://{run_dir}/books"
    symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    port = start_binance_sim(spawn_child, symbols=symbols, rate=500, seed=5)
    start_builder(spawn_child, bus, endpoint, "binance")
    config = write_config(run_dir, child_toml("books", "tickmesh.consumers.books",
                                              {"snapshot_endpoint": endpoint}))
    patterns = ["book_snapshot.binance", "book_delta.binance.BTC-USDT"]
    with BusLog(bus.subscribe, patterns) as log:
        subscribed(bus, endpoint, "binance", log)
        start_handler("binance", port, bus=bus, symbols=symbols, **BINANCE_DEPTH)
        log.until(lambda _: all_live(endpoint, "binance", symbols)
                  and sum(d.symbol == "BTC-USDT" for d in log.of(BookDelta)) >= 20,
                  what="every book live, and BTC-USDT streaming")
        answers, latencies = [], []
        for _ in range(2):
            asked = time.monotonic()
            late = spawn([*TICKMESH, "book", "binance", "BTC-USDT", "--config", str(config),
                          "--json", "--depth", "0", "--timeout", "1"], env=env(run_dir),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = late.communicate(timeout=30)
            latencies.append(time.monotonic() - asked)
            assert late.returncode == 0, err  # 1 if no answer came within the 1 s timeout
            answers.append(json.loads(out))
            asked = time.monotonic()
            ask(endpoint, "binance", "BTC-USDT")
            latencies.append(time.monotonic() - asked)
        # the market went on while they asked: both books must be ones the bus went through
        last_seq = max((a["seq"] for a in answers if a["kind"] == "book_delta"), default=0)
        log.until(lambda _: any(d.seq >= last_seq for d in log.of(BookDelta)
                                if d.symbol == "BTC-USDT"), what="the bus past the answers")
        history = bus_history(log.events, "BTC-USDT")
    for answer in answers:
        assert (answer["provider"], answer["symbol"], answer["state"]) == (
            "binance", "BTC-USDT", "live")
        assert_consistent(answer)
        key = (answer["epoch"], answer["kind"], answer["seq"])
        assert key in history, key
        bids, asks = history[key]
        assert (answer["bids"], answer["asks"]) == (levels(bids, True), levels(asks, False))
    assert latencies[1] < 1.0 and latencies[3] < 1.0, latencies  # the service itself
    print(f"\nlate joiner: `tickmesh book` took {latencies[0]:.2f} and {latencies[2]:.2f} s "
          f"(process start included), request_book {latencies[1] * 1000:.1f} and "
          f"{latencies[3] * 1000:.1f} ms")


def bus_history(events: list, symbol: str) -> dict[tuple[int, str, int], Book]:
    """The book the bus implies after each of `symbol`'s book events, by (epoch, kind, seq)."""
    history: dict[tuple[int, str, int], Book] = {}
    book: Book | None = None
    for event in events:
        if getattr(event, "symbol", None) != symbol:
            continue
        if isinstance(event, BookSnapshot):
            book = (dict(event.bids), dict(event.asks))
        elif isinstance(event, BookDelta) and book is not None:
            apply_levels(book, event.bids, event.asks)
        else:
            continue
        history[event.epoch, event.__struct_config__.tag, event.seq] = (
            dict(book[0]), dict(book[1]))
    return history
