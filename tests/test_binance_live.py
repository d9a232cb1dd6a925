"""The Binance handler as a real process against the Binance simulator, through a real
forwarder: books that equal the simulator's true books, a provider-side gap on one symbol
among ten, a resync asked over the bus, a replay of recorded frames and snapshots (with
hostile lines among them), a resync that keeps failing, serverShutdown, a 429 and a 418 with
Retry-After (no REST request until it has passed, a reconnect meanwhile included), and
`tickmesh check`."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tickmesh.bus import Publisher
from tickmesh.bus.events import BookDelta, BookSnapshot, Control, Heartbeat, Quote, Status, Trade
from tests import simcontrol, simulators
from tests.books import implied_books
from tests.buslog import BusLog

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "LTC-USDT", "LINK-USDT", "AVAX-USDT",
           "ETH-BTC", "BNB-USDT", "XRP-USDT", "DOGE-USDT"]
HANDLER_SETTINGS = {"symbols": SYMBOLS, "backoff_min": 0.1}
BUS_PATTERNS = [f"{kind}.binance" for kind in
                ("book_snapshot", "book_delta", "status", "trade", "quote", "heartbeat")]


@dataclass
class Sim:
    port: int

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return simcontrol.control(self.port, action, **params)


def start_sim(spawn_child, **settings) -> Sim:
    settings = {"symbols": SYMBOLS, "rate": 50, "seed": 7, **settings}
    port, _ = simulators.start(spawn_child, "tickmesh.handlers.binance.sim.server", "binance-sim", None,
                               settings, ready=simcontrol.serving)
    return Sim(port)


def true_book(sim: Sim, symbol: str) -> tuple[dict, dict]:
    answer = sim.control("book", symbol=symbol.replace("-", ""), depth=5000)
    return ({float(p): float(q) for p, q in answer["bids"]},
            {float(p): float(q) for p, q in answer["asks"]})


def all_synced(bus: BusLog, symbols=SYMBOLS) -> None:
    bus.until(lambda events: {e.symbol for e in bus.of(BookSnapshot)} >= set(symbols),
              what="a book snapshot of every symbol", timeout=30)


def books_match(bus: BusLog, sim: Sim, symbols=SYMBOLS) -> None:
    """Stop the market, then wait until every book read from the bus is the true one."""
    sim.control("quiet", seconds=60)

    def matching(events: list) -> bool:
        built = implied_books(events)
        return all(built.get(s) == true_book(sim, s) for s in symbols)

    bus.until(matching, what="the books on the bus to equal the simulator's", timeout=20)


def test_books_on_the_bus_equal_the_true_books(forwarder, bus, spawn_child, start_handler):
    sim = start_sim(spawn_child)
    start_handler("binance", sim.port)
    all_synced(bus)
    bus.until(lambda events: len(bus.of(BookDelta)) > 100 and bus.of(Trade) and bus.of(Quote),
              what="deltas, trades and quotes")
    books_match(bus, sim)
    snapshot = bus.of(BookSnapshot)[0]
    assert snapshot.native_symbol == snapshot.symbol.replace("-", "")
    assert snapshot.bids[0][0] < snapshot.asks[0][0] and snapshot.generation == 1
    assert {t.side for t in bus.of(Trade)} <= {"b", "s"}
    assert "resyncing" not in bus.states()
    assert sorted(sim.control("stats")["subscriptions"][0]) == sorted(
        f"{s.replace('-', '').lower()}@{c}" for s in SYMBOLS
        for c in ("depth@100ms", "trade", "bookTicker"))


def test_a_gap_resyncs_that_symbol_while_the_others_stream_on(
        forwarder, bus, spawn_child, start_handler):
    sim = start_sim(spawn_child)
    start_handler("binance", sim.port, channels=["depth"])
    all_synced(bus)
    sim.control("delay", symbol="BTCUSDT", seconds=1.0)  # its new snapshot takes a second
    sim.control("gap", symbol="BTCUSDT")

    def resynced(events: list) -> int | None:
        for i, e in enumerate(events):
            if isinstance(e, BookSnapshot) and e.symbol == "BTC-USDT" and e.generation == 2:
                return i
        return None

    end = bus.until(resynced, what="BTC-USDT resynced", timeout=20)
    start = next(i for i, e in enumerate(bus.events)
                 if isinstance(e, Status) and e.state == "resyncing")
    during = {e.symbol for e in bus.events[start:end] if isinstance(e, BookDelta)}
    assert during == set(SYMBOLS) - {"BTC-USDT"}
    resyncing = [s for s in bus.of(Status) if s.state == "resyncing"]
    assert {s.symbol for s in resyncing} == {"BTC-USDT"} and "gap" in resyncing[0].message
    books_match(bus, sim)


def test_a_control_request_over_the_bus_resyncs(forwarder, bus, spawn_child, start_handler):
    sim = start_sim(spawn_child, symbols=SYMBOLS[:2])
    start_handler("binance", sim.port, symbols=SYMBOLS[:2])
    all_synced(bus, SYMBOLS[:2])
    now = time.time_ns()
    publisher = Publisher(forwarder.publish)
    try:
        publisher.publish(Control(provider="binance", symbol="ETH-USDT", ts_event=now,
                                  ts_recv=now, action="resync", sender="test"))
        bus.until(lambda events: any(isinstance(e, BookSnapshot) and e.symbol == "ETH-USDT"
                                     and e.generation == 2 for e in events),
                  what="a new ETH-USDT snapshot")
    finally:
        publisher.close()
    assert [(s.state, s.symbol) for s in bus.of(Status) if s.state == "resyncing"] == [
        ("resyncing", "ETH-USDT")]
    books_match(bus, sim, SYMBOLS[:2])


def recording(path: Path) -> tuple[Path, Path, dict]:
    """Frames and snapshots of BTCUSDT and ETHUSDT, hostile lines among them, and the books
    they imply."""
    lines, snapshots, expected = [], [], {}
    for native, first in (("BTCUSDT", 1000), ("ETHUSDT", 5000)):
        stream = f"{native.lower()}@depth@100ms"
        book = {"b": {100.0 + i: 1.0 + i for i in range(5)},
                "a": {106.0 + i: 2.0 + i for i in range(5)}}
        snapshot_id = first + 10
        snapshots.append({"symbol": native, "response": {
            "lastUpdateId": snapshot_id,
            "bids": [[f"{p}", f"{q}"] for p, q in sorted(book["b"].items(), reverse=True)],
            "asks": [[f"{p}", f"{q}"] for p, q in sorted(book["a"].items())]}})
        for n in range(30):
            U, u = first + 2 * n, first + 2 * n + 1
            bids, asks = [[f"{100.0 + n % 5}", f"{n}"]], [[f"{106.0 + n % 7}", f"{n % 3}"]]
            if u > snapshot_id:
                for side, levels in (("b", bids), ("a", asks)):
                    for p, q in levels:
                        book[side][float(p)] = float(q)
                        if not float(q):
                            del book[side][float(p)]
            lines.append({"stream": stream, "data": {"e": "depthUpdate", "E": 1_700_000_000_000
                                                     + n, "s": native, "U": U, "u": u,
                                                     "b": bids, "a": asks}})
        expected[native[:3] + "-USDT"] = (book["b"], book["a"])
    trade = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "101.5", "q": "NaN", "T": 1,
             "m": True, "M": True}
    text = [json.dumps(line) for line in lines]
    text[20:20] = ["not json at all", "[" * 50_000 + "]" * 50_000,
                   json.dumps({"stream": "btcusdt@trade", "data": trade})]
    text.append(json.dumps({"stream": "btcusdt@trade", "data": {**trade, "q": "0.5", "t": 2}}))
    frames, answers = path / "frames.jsonl", path / "snapshots.jsonl"
    frames.write_text("\n".join(text) + "\n")
    answers.write_text("\n".join(json.dumps(s) for s in snapshots) + "\n")
    return frames, answers, expected


def test_replay_of_recorded_frames_and_snapshots_builds_their_books(
        forwarder, bus, spawn_child, start_handler, tmp_path):
    frames, answers, expected = recording(tmp_path)
    sim = start_sim(spawn_child, symbols=["BTC-USDT", "ETH-USDT"], replay=str(frames),
                    snapshots=str(answers))
    handler = start_handler("binance", sim.port, symbols=["BTC-USDT", "ETH-USDT"],
                            channels=["depth", "trade"])
    bus.until(lambda events: implied_books(events) == expected and bus.of(Trade),
              what="the books the recording implies, and its good trade")
    assert bus.of(Trade)[0].size == 0.5
    bus.until(lambda events: any(isinstance(e, Heartbeat) and e.metric(
        "bad_input", reason="malformed_trade") == 1 and e.metric(
        "bad_input", reason="malformed_frame") == 2 for e in events),
        what="the hostile lines counted")
    assert handler.poll() is None and "resyncing" not in bus.states()


def test_a_resync_that_keeps_failing_backs_off_more_and_more(
        forwarder, bus, spawn_child, start_handler):
    sim = start_sim(spawn_child, symbols=["BTC-USDT"])  # no XRP-USDT: its snapshots fail
    start_handler("binance", sim.port, symbols=["BTC-USDT", "XRP-USDT"], channels=["depth"])

    def failures(events: list) -> list[int]:
        return [e.ts_event for e in events if isinstance(e, Status)
                and e.state == "resyncing" and e.symbol == "XRP-USDT"]

    times = bus.until(lambda events: len(failures(events)) >= 6 and failures(events),
                      what="six failed resyncs", timeout=30)
    waits = [b - a for a, b in zip(times, times[1:])]
    assert waits[-1] > 2 * waits[0], waits
    failed = [s.message for s in bus.of(Status) if s.symbol == "XRP-USDT"]
    assert all("snapshot failed: 400" in message for message in failed), failed
    assert {e.symbol for e in bus.of(BookSnapshot)} == {"BTC-USDT"}


def test_server_shutdown_ends_the_connection_and_the_handler_comes_back(forwarder, bus,
                                                                        spawn_child, start_handler):
    sim = start_sim(spawn_child, symbols=SYMBOLS[:1], max_age=1.5)
    start_handler("binance", sim.port, symbols=SYMBOLS[:1])
    all_synced(bus, SYMBOLS[:1])
    mark = bus.mark()
    bus.until(lambda events: bus.resubscribed(mark) is not None and any(
        isinstance(e, BookSnapshot) for e in events[bus.resubscribed(mark):]),
        what="a reconnect after serverShutdown, and a new book", timeout=20)
    disconnect = next(s for s in bus.of(Status, mark) if s.state == "disconnected")
    assert "closed by protocol" in disconnect.message


RETRY_AFTER = 3


@pytest.mark.parametrize("status", [429, 418])
def test_retry_after_holds_every_rest_request_of_the_handler(
        forwarder, bus, spawn_child, start_handler, status):
    symbols = SYMBOLS[:3]
    sim = start_sim(spawn_child, symbols=symbols)
    sim.control("refuse", status=status, seconds=RETRY_AFTER)  # the next REST request
    start_handler("binance", sim.port, symbols=symbols, channels=["depth"], snapshots_in_flight=1)

    def backoff(events: list) -> Status | None:
        return next((e for e in events if isinstance(e, Status) and e.state == "error"
                     and e.code == status), None)

    told = bus.until(backoff, what=f"a Status naming the {status}")
    assert "until" in told.message and f"({RETRY_AFTER} s)" in told.message, told.message
    sim.control("drop")  # a new connection asks for every book again: still held
    all_synced(bus, symbols)
    rest = sim.control("stats")["rest"]
    assert rest["refused"] == 1 and rest["early"] == 0, rest
    first = min(e.ts_recv for e in bus.of(BookSnapshot))
    assert first - told.ts_event >= (RETRY_AFTER - 0.1) * 1e9
    bus.until(lambda events: any(isinstance(e, Heartbeat) and e.metric(
        "binance_rest_backoffs", status=str(status)) == 1 for e in events),
        what="the backoff counted")


def tickmesh_check(spawn, config: Path):
    script = Path(sys.executable).parent / "tickmesh"
    proc = spawn([str(script), "check", str(config)], stdout=-1, stderr=-1, text=True)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


CONFIG = """
[bus]
publish = "ipc://{run_dir}/publish"
subscribe = "ipc://{run_dir}/subscribe"

[supervisor]
control = "ipc://{run_dir}/control"
run_dir = "%s"

[[children]]
name = "binance-sim"
run = "tickmesh.handlers.binance.sim.server"
[children.settings]
port = 19443
symbols = ["BTC-USDT", "ETH-USDT"]
max_age = 3600.0

[[children]]
name = "binance"
run = "tickmesh.handlers.binance.handler"
after = ["binance-sim"]
[children.settings]
url = "ws://127.0.0.1:19443/stream"
rest_url = "http://127.0.0.1:19443"
symbols = %s
depth_limit = 500
"""


def test_tickmesh_check_accepts_the_simulator_and_the_handler(spawn, run_dir):
    config = run_dir / "binance.toml"
    config.write_text(CONFIG % (run_dir, '["BTC-USDT", "ETH-USDT"]'))
    code, out, err = tickmesh_check(spawn, config)
    assert code == 0 and out.startswith("ok"), err
    config.write_text(CONFIG % (run_dir, '["BTCUSDT"]'))
    code, _, err = tickmesh_check(spawn, config)
    assert code == 2 and "children[1] (binance).settings.symbols" in err, err
