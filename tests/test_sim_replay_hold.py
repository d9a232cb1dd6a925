"""The Binance simulator's replay held for the snapshots (`hold_for_snapshots`, issue 21): a
real simulator replaying three symbols' depthUpdates to a real WebSocket client on loopback
sends the recorded frames in order until every subscribed symbol's first update has gone,
then nothing more until a REST depth answer has been served for each of them since the
connection subscribed (one fetched before it does not count), then the rest, in recorded
order. The simulator's stats say which symbols a held connection still waits for."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests import simcontrol, simulators
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(30)
SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
ORDER = ["AAAUSDT", "BBBUSDT", "AAAUSDT", "CCCUSDT", *SYMBOLS * 4]
"""The recorded order of the symbols' depthUpdates: CCCUSDT's first one is the fourth."""
PREFIX = 4
"""What goes before the hold: the frames up to and including the last symbol's first update."""
WAIT = 8.0


def recording(path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The depthUpdates of ORDER as Binance sent them: (the file, its frames in order)."""
    frames, ids = [], dict.fromkeys(SYMBOLS, 1000)
    for n, symbol in enumerate(ORDER):
        first, ids[symbol] = ids[symbol] + 1, ids[symbol] + 2
        frames.append({"stream": f"{symbol.lower()}@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1_700_000_000_000 + n, "s": symbol, "U": first,
            "u": ids[symbol], "b": [[f"{100 - n % 3}.00", f"{n + 1}.0"]],
            "a": [[f"{101 + n % 2}.00", "0.0" if n % 4 == 3 else f"{n + 2}.0"]]}})
    file = path / "binance.jsonl"
    file.write_text("".join(json.dumps(frame) + "\n" for frame in frames))
    return file, frames


def depth(port: int, symbol: str) -> dict[str, Any]:
    """The simulator's REST depth answer for `symbol` (it must be a 200)."""
    address = f"http://127.0.0.1:{port}/api/v3/depth?symbol={symbol}&limit=100"
    with urllib.request.urlopen(address, timeout=WAIT) as answer:
        assert answer.status == 200
        return json.loads(answer.read())


def stats(port: int) -> dict[str, Any]:
    return simcontrol.control(port, "stats")


def queued(port: int) -> float:
    return stats(port)["counters"]["sim_messages_sent"]


def test_a_held_replay_waits_after_each_symbols_first_update_for_every_snapshot(
        spawn_child, tmp_path):
    file, frames = recording(tmp_path)
    port = simulators.start(spawn_child, "tickmesh.handlers.binance.sim.server", "binance-sim",
                            None, {"replay": str(file), "hold_for_snapshots": True},
                            ready=simcontrol.serving)[0]
    depth(port, "AAAUSDT")  # before the connection subscribes: not counted
    streams = "/".join(f"{symbol.lower()}@depth@100ms" for symbol in SYMBOLS)
    with connect(f"ws://127.0.0.1:{port}/stream?streams={streams}") as ws:
        def receive(count: int) -> list[dict[str, Any]]:
            return [json.loads(ws.recv(timeout=WAIT)) for _ in range(count)]

        assert receive(PREFIX) == frames[:PREFIX]
        held = wait_until(lambda: stats(port)["held"], timeout=WAIT, what="the replay to hold")
        assert list(held.values()) == [SYMBOLS]
        assert queued(port) == PREFIX
        for symbol in SYMBOLS[:2]:
            depth(port, symbol)
        assert list(stats(port)["held"].values()) == [["CCCUSDT"]]
        assert queued(port) == PREFIX
        depth(port, "CCCUSDT")
        assert receive(len(frames) - PREFIX) == frames[PREFIX:]
        assert stats(port)["held"] == {}
