"""The Coinbase and Binance simulators' replay mode serves the products of the file it replays
without their being listed in its `symbols` (issue 18): a real simulator started with a replay
of BAND-BTC (Coinbase) or BANDBTC (Binance), which its symbols do not list, and the real
handler subscribed to it, whose books and trades reach the bus. The symbols the settings list
are accepted too; one neither in the file nor in the settings is refused as before, with the
venue's own error (Coinbase: "... is not a valid product"; Binance's REST depth: -1121
"Invalid symbol."), and Binance's exchangeInfo lists what its depth answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tickmesh.bus import BookSnapshot, Status, Trade
from tests import simcontrol, simulators
from tests.books import Book, apply_levels, implied_books
from tests.buslog import BusLog

pytestmark = pytest.mark.timeout(30)
BUS_PATTERNS = [f"{kind}.{provider}" for provider in ("coinbase", "binance")
                for kind in ("book_snapshot", "book_delta", "trade", "status")]
SETTINGS_ONLY = {"coinbase": ["BTC-USD", "ETH-USD"], "binance": ["BTC-USDT", "ETH-USDT"]}
"""The simulators' symbols: none of them is in the replayed files."""
WAIT = 8.0


def start_sim(spawn_child, provider: str, replay: Path) -> int:
    settings = {"symbols": SETTINGS_ONLY[provider], "replay": str(replay)}
    module = f"tickmesh.handlers.{provider}.sim.server"
    return simulators.start(spawn_child, module, f"{provider}-sim", None, settings,
                            ready=simcontrol.serving)[0]


def refusals(bus: BusLog, symbol: str) -> list[str]:
    return [s.message for s in bus.of(Status) if s.symbol == symbol and s.state in
            ("error", "resyncing")]


# --- Coinbase ------------------------------------------------------------------------------

def coinbase_recording(path: Path) -> tuple[Path, Book, list[str]]:
    """A BAND-BTC snapshot, l2updates and matches as Coinbase sent them: (the file, the book
    and the trade ids they imply)."""
    bids = [[f"0.000{150 - k}", f"{k + 1}.5"] for k in range(5)]
    asks = [[f"0.000{151 + k}", f"{k + 2}.25"] for k in range(5)]
    book: Book = ({float(p): float(s) for p, s in bids}, {float(p): float(s) for p, s in asks})
    lines = [{"type": "snapshot", "product_id": "BAND-BTC", "bids": bids, "asks": asks}]
    trades = []
    for i in range(1, 13):
        stamp = f"2024-03-01T12:00:00.{i:06d}Z"
        price, size = f"0.000{150 - i % 4}", "0.00000000" if i % 5 == 0 else f"{i}.75"
        lines.append({"type": "l2update", "product_id": "BAND-BTC", "time": stamp,
                      "changes": [["buy", price, size]]})
        apply_levels(book, [(float(price), float(size))], [])
        if i % 3 == 0:
            trade_id = 70 + i // 3
            lines.append({"type": "match", "product_id": "BAND-BTC", "trade_id": trade_id,
                          "sequence": 900 + i, "maker_order_id": "a", "taker_order_id": "b",
                          "time": stamp, "size": "1.5", "price": "0.000151", "side": "sell"})
            trades.append(str(trade_id))
    file = path / "coinbase.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return file, book, trades


def test_coinbase_replays_a_product_its_symbols_do_not_list(
        spawn_child, start_handler, bus, tmp_path):
    file, book, trades = coinbase_recording(tmp_path)
    port = start_sim(spawn_child, "coinbase", file)
    start_handler("coinbase", port, symbols=["BAND-BTC"], stale_after=0)
    bus.until(lambda events: implied_books(events).get("BAND-BTC") == book
              and len(bus.of(Trade)) == len(trades) or refusals(bus, "BAND-BTC"),
              what="BAND-BTC's recorded book and trades (or its refusal)", timeout=WAIT)
    assert refusals(bus, "BAND-BTC") == []
    assert [t.trade_id for t in bus.of(Trade)] == trades
    assert [e.symbol for e in bus.of(BookSnapshot)] == ["BAND-BTC"]


def receive(ws: Any) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=WAIT))


def subscribe(ws: Any, *products: str) -> None:
    ws.send(json.dumps({"type": "subscribe", "product_ids": list(products),
                        "channels": ["level2_batch", "matches"]}))


def test_coinbase_replay_still_refuses_a_product_neither_replayed_nor_listed(
        spawn_child, tmp_path):
    file, _, _ = coinbase_recording(tmp_path)
    port = start_sim(spawn_child, "coinbase", file)
    with connect(f"ws://127.0.0.1:{port}") as ws:
        subscribe(ws, "BAND-BTC", "XRP-USD")  # one refused: the whole request is
        assert receive(ws) == {"type": "error", "message": "Failed to subscribe",
                               "reason": "XRP-USD is not a valid product"}
        assert receive(ws) == {"type": "subscriptions", "channels": []}
        subscribe(ws, "BAND-BTC", "BTC-USD")  # replayed, and listed in the settings
        assert receive(ws)["channels"] == [
            {"name": name, "product_ids": ["BAND-BTC", "BTC-USD"]}
            for name in ("level2_batch", "matches")]
        first = receive(ws)
        assert (first["type"], first["product_id"]) == ("snapshot", "BAND-BTC")


# --- Binance -------------------------------------------------------------------------------

FIRST_ID = 500


def binance_recording(path: Path) -> tuple[Path, Book]:
    """BANDBTC's depthUpdates from FIRST_ID on and a trade, as Binance sent them (no REST
    answer recorded): (the file, the book the updates build from an empty one)."""
    lines, book = [], ({}, {})
    for n in range(12):
        bids = [[f"0.0001{n % 5}", f"{n + 1}.0"]]
        asks = [[f"0.0002{n % 4}", "0.0" if n % 3 == 2 else f"{n + 2}.0"]]
        lines.append({"stream": "bandbtc@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1_700_000_000_000 + n, "s": "BANDBTC",
            "U": FIRST_ID + 2 * n, "u": FIRST_ID + 2 * n + 1, "b": bids, "a": asks}})
        apply_levels(book, [(float(p), float(q)) for p, q in bids],
                     [(float(p), float(q)) for p, q in asks])
    lines.append({"stream": "bandbtc@trade", "data": {
        "e": "trade", "E": 1_700_000_000_100, "s": "BANDBTC", "t": 42, "p": "0.00012",
        "q": "3.5", "T": 1_700_000_000_100, "m": False, "M": True}})
    file = path / "binance.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return file, book


def test_binance_replays_a_pair_its_symbols_do_not_list(
        spawn_child, start_handler, bus, tmp_path):
    file, book = binance_recording(tmp_path)
    port = start_sim(spawn_child, "binance", file)
    start_handler("binance", port, symbols=["BAND-BTC"], channels=["depth", "trade"])
    bus.until(lambda events: implied_books(events).get("BAND-BTC") == book and bus.of(Trade)
              or refusals(bus, "BAND-BTC"),
              what="BANDBTC's recorded book and trade (or its refusal)", timeout=WAIT)
    assert refusals(bus, "BAND-BTC") == []
    assert [(t.symbol, t.trade_id, t.size) for t in bus.of(Trade)] == [("BAND-BTC", "42", 3.5)]


def rest(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=WAIT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def test_binance_replay_rest_agrees_with_the_pairs_it_serves(spawn_child, tmp_path):
    file, _ = binance_recording(tmp_path)
    port = start_sim(spawn_child, "binance", file)
    status, info = rest(port, "/api/v3/exchangeInfo")
    assert status == 200
    assert {(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]} == {
        ("BANDBTC", "BAND", "BTC"), ("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")}
    assert rest(port, "/api/v3/depth?symbol=BANDBTC&limit=100") == (
        200, {"lastUpdateId": FIRST_ID - 1, "bids": [], "asks": []})
    assert rest(port, "/api/v3/depth?symbol=BTCUSDT&limit=100") == (
        200, {"lastUpdateId": 0, "bids": [], "asks": []})
    assert rest(port, "/api/v3/depth?symbol=XRPUSDT&limit=100") == (
        400, {"code": -1121, "msg": "Invalid symbol."})
