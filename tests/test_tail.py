"""The tail consumer, as `tickmesh tail` and as a supervised child, reading a real bus."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from tickmesh.bus import Publisher, Status
from tickmesh.consumers.tail import format_json, format_pretty
from tests.publishing import quote, trade

TRADE = {"price": 126.55, "size": 100.0, "ts_event": 1_700_000_000_123_456_789,
         "ts_recv": 1_700_000_000_200_000_000, "exchange": "V", "conditions": ["@", "I"]}
"""The trade the tail is shown, as keyword arguments of trade()."""
QUOTE = {"bid": 87.66, "ask": 87.68, "ask_size": 4.0, "ts_event": 1, "ts_recv": 2}
"""The quote the tail is shown, as keyword arguments of quote()."""


def publish_until(stop: threading.Event, endpoint: str) -> threading.Thread:
    def loop() -> None:
        pub = Publisher(endpoint)
        while not stop.wait(0.005):
            for symbol in ("AAPL", "AAPLX"):
                pub.publish(trade(symbol, **TRADE))
                pub.publish(quote(symbol, **QUOTE))
        pub.close()

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def read_lines(proc: subprocess.Popen, n: int) -> list[dict]:
    return [json.loads(proc.stdout.readline()) for _ in range(n)]


def test_cli_tail_prints_only_the_exact_symbol_as_json_lines(forwarder, spawn, run_dir):
    config = run_dir / "tail.toml"
    config.write_text(f'[bus]\npublish = "{forwarder.publish}"\nsubscribe = "{forwarder.subscribe}"\n'
                      f'[supervisor]\ncontrol = "ipc://{run_dir}/control"\n')
    proc = spawn([sys.executable, "-m", "tickmesh.cli", "tail", "trade.*.AAPL",
                  "--config", str(config), "--count", "5"], stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    publisher = publish_until(stop, forwarder.publish)
    try:
        lines = read_lines(proc, 5)
        assert proc.wait(timeout=10) == 0
    finally:
        stop.set()
        publisher.join()
    assert {(line["k"], line["s"]) for line in lines} == {("trade", "AAPL")}
    assert lines[0]["px"] == 126.55 and lines[0]["te"] == 1_700_000_000_123_456_789


def test_supervised_tail_prints_its_configured_patterns(forwarder, spawn_child):
    proc = spawn_child("tickmesh.consumers.tail", "tail", {"patterns": ["quote.alpaca.AAPLX"]},
                       stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    publisher = publish_until(stop, forwarder.publish)
    try:
        lines = read_lines(proc, 3)
    finally:
        stop.set()
        publisher.join()
    assert {(line["k"], line["s"]) for line in lines} == {("quote", "AAPLX")}


def test_pretty_lines_show_what_a_person_needs():
    assert format_pretty(trade("AAPL", **TRADE)) == (
        "22:13:20.123456  trade         alpaca     AAPL      126.55 x 100  V @,I")
    line = format_pretty(Status(provider="alpaca", ts_event=0, ts_recv=0, state="error",
                                code=402, message="auth failed"))
    assert "error [402] auth failed" in line
    assert json.loads(format_json(quote("MSFT", **QUOTE)))["bp"] == 87.66


def test_pretty_lines_show_prices_and_sizes_exactly_as_received():
    event = trade("BTC-USD", 90312.28, 0.46989847)
    assert "90312.28 x 0.46989847" in format_pretty(event)
