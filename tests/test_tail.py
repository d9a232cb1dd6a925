"""The tail consumer, as `tickmesh tail` and as a supervised child, reading a real bus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from tickmesh.bus import Publisher, Status
from tickmesh.consumers.tail import Settings, format_json, format_pretty
from tickmesh.runtime.settings import SettingsError
from tests.conftest import free_port
from tests.publishing import quote, trade
from tests.supervised import TICKMESH, Running, child_toml, env, tickmesh, write_config

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


# --- typos (issue 20): refused, or warned about, never a silent wait --------------------------

def test_cli_tail_refuses_an_unknown_kind_and_lists_the_kinds(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "tail", "trades.*.AAPL")  # Alpaca's `channels` spelling
    assert result.code == 2, result.err
    assert "unknown kind 'trades'" in result.err
    assert all(kind in result.err for kind in ("trade", "quote", "bbo", "book_status", "alert"))
    assert result.out == ""


def test_cli_tail_help_shows_the_usage_that_works_and_the_kinds(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "tail", "--help")
    assert result.code == 0
    assert result.out.startswith("usage: tickmesh tail [-h] [--config CONFIG]")
    assert "--endpoint" not in result.out
    assert "The kinds: trade, quote, book_snapshot" in result.out


def test_cli_tail_warns_of_what_the_running_system_does_not_publish_and_waits(spawn, run_dir):
    port = free_port()
    config = write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": port, "rate": 50, "symbols": ["AAPL", "MSFT"]}),
        child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                   {"url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["AAPL", "MSFT"]},
                   after=["alpaca-sim"]))
    Running(spawn, run_dir, config).wait_all_running(timeout=15)
    typos = ["trade.*.APPL", "trade.alpca.AAPL", "trade.*.aapl"]
    proc = spawn([*TICKMESH, "tail", "trade.alpaca.AAPL", *typos], env=env(run_dir),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = json.loads(proc.stdout.readline())  # still waiting, and the good pattern works
    assert (line["k"], line["p"], line["s"]) == ("trade", "alpaca", "AAPL")
    assert proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    warnings = [w for w in proc.stderr.read().splitlines() if "warning" in w]
    assert len(warnings) == 4, warnings
    assert "'trade.*.APPL'" in warnings[0] and "no symbol 'APPL'" in warnings[0]
    assert "AAPL, MSFT" in warnings[0]
    assert "'trade.alpca.AAPL'" in warnings[1] and "no provider 'alpca'" in warnings[1]
    assert "alpaca" in warnings[1]
    assert "'trade.*.aapl'" in warnings[2] and "upper case ('AAPL'" in warnings[2]
    assert "'trade.*.aapl'" in warnings[3] and "no symbol 'aapl'" in warnings[3]
    assert not any("'trade.alpaca.AAPL'" in w for w in warnings)


def test_supervised_tail_refuses_an_unknown_kind():
    with pytest.raises(SettingsError, match="unknown kind 'trades'"):
        Settings(patterns=["trades.alpaca"])
