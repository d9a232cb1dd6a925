"""`tickmesh top`: the dashboard's frames from synthetic status answers and quotes (pure, as
text), and `top --once` on a real supervised system."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from rich.console import Console, RenderableType

from tickmesh.bus import Subscriber
from tickmesh.bus.events import Bbo, Quote
from tests.conftest import free_port
from tests.publishing import quote
from tests.supervised import TICKMESH, Running, child_toml, env, tickmesh, write_config
from tests.waiting import wait_until
from tickmesh.commands.top import book_patterns, config_symbols
from tickmesh.dashboard import (Model, book_table, duration, feeds_table, history_length,
                                processes_table, render, size, sparkline)

TICKER = "tests.children.ticker"
NOW = 1_700_000_000.0
HEALTH = {
    "heartbeat_age": 0.4, "events_published": 12345, "events_per_second": 41.5,
    "events_received": None, "events_received_per_second": None, "last_event_age": 0.25,
    "gaps": 3, "reconnects": 2, "latency_p50": 0.00042, "latency_p99": 0.0125,
    "feed": {"provider": "alpaca", "state": "subscribed", "connected": True, "since": NOW - 60,
             "last_error": {"code": 406, "message": "connection limit exceeded", "at": NOW - 90},
             "resyncing": []},
}
STATUS = {
    "pid": 100, "config": "/etc/tickmesh.toml",
    "supervisor": {"pid": 100, "uptime": 7300.0, "cpu_percent": 1.5, "rss_bytes": 52_428_800,
                   "health": None},
    "children": {
        "forwarder": {"state": "running", "pid": 101, "restarts": 0, "uptime": 7299.0,
                      "ready": True, "exit_code": None, "cpu_percent": 12.25,
                      "rss_bytes": 20_971_520, "health": None},
        "alpaca": {"state": "running", "pid": 102, "restarts": 1, "uptime": 125.0,
                   "ready": True, "exit_code": None, "cpu_percent": 3.0,
                   "rss_bytes": 73_400_320, "health": HEALTH},
        "tail": {"state": "backoff", "pid": None, "restarts": 4, "uptime": None, "ready": False,
                 "exit_code": 1, "cpu_percent": None, "rss_bytes": None,
                 "health": dict(HEALTH, feed=None)},
    },
}
OLD_STATUS = {  # before the supervisor reported health, CPU and memory
    "pid": 100, "config": "/etc/tickmesh.toml",
    "children": {"alpaca": {"state": "running", "pid": 102, "restarts": 0, "uptime": 5.0,
                            "ready": True, "exit_code": None}},
}


def text(renderable: RenderableType, width: int = 200) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()


def section(frame: str, title: str) -> str:
    """The lines of the frame's table titled `title`, up to the blank line that ends it."""
    return frame.split(f"\n{title}", 1)[1].split("\n\n", 1)[0]


def row(frame: str, first: str) -> list[str]:
    """The cells of the frame's row that starts with `first` (cells are 2+ spaces apart)."""
    line = next(line for line in frame.splitlines() if line.startswith(f"{first} "))
    return re.split(r" {2,}", line.strip())


def aged_quote(symbol: str, provider: str = "alpaca", bid: float = 187.12, ask: float = 187.13,
               age: float = 0.5) -> Quote:
    """A quote received `age` seconds before NOW, 100 bid and 200 offered."""
    return quote(symbol, bid, ask, provider=provider, bid_size=100.0, ask_size=200.0,
                 ts_event=1, ts_recv=int((NOW - age) * 1e9))


# --- the frame, from synthetic data --------------------------------------------------------

def test_every_process_appears_with_its_values_formatted():
    frame = text(processes_table(STATUS))
    assert row(frame, "supervisor") == ["supervisor", "running", "100", "2h01m", "-", "1.5",
                                        "50.0 MiB"]
    assert row(frame, "forwarder") == ["forwarder", "running", "101", "2h01m", "0", "12.2",
                                       "20.0 MiB"]
    assert row(frame, "alpaca") == ["alpaca", "running", "102", "2m05s", "1", "3.0", "70.0 MiB"]
    assert row(frame, "tail") == ["tail", "backoff", "-", "-", "4", "-", "-"]


def test_every_feed_appears_and_only_feeds():
    model = Model((), history=30)
    model.observe_status(STATUS)
    frame = text(feeds_table(model.status, model.rates))
    assert row(frame, "alpaca") == ["alpaca", "alpaca", "subscribed", "41.5", "█", "0.2s", "3",
                                    "2", "0.42", "12.5", "[406] connection limit exceeded"]
    assert "tail" not in frame and "forwarder" not in frame
    assert model.providers == {"alpaca"}


def test_a_resyncing_feed_says_how_many_symbols():
    health = dict(HEALTH, feed=dict(HEALTH["feed"], resyncing=["BTC-USD", "ETH-USD"]))
    status = {"children": {"coinbase": {"state": "running", "health": health}}}
    assert row(text(feeds_table(status, {})), "coinbase")[2] == "subscribed (2 resyncing)"


def test_an_answer_without_health_shows_dashes_and_no_feeds():
    model = Model(("AAPL",), history=30)
    model.observe_status(OLD_STATUS)
    frame = text(render(model, NOW))
    assert row(frame, "supervisor") == ["supervisor", "running", "100", "-", "-", "-", "-"]
    assert row(frame, "alpaca") == ["alpaca", "running", "102", "5s", "0", "-", "-"]
    assert "no feeds: no child's health names one (yet)" in frame
    assert row(frame, "AAPL")[-1] == "no quote yet"


def test_a_feed_whose_health_lacks_keys_shows_dashes():
    status = {"children": {"ib": {"health": {"feed": {"provider": "ib"}}}}}
    assert row(text(feeds_table(status, {})), "ib") == ["ib", "ib", *["-"] * 7]


def test_the_sparkline_follows_the_rates_of_successive_polls():
    model = Model((), history=history_length(10.0))  # 3 polls cover 30 s
    for rate in (0.0, 10.0, None, 40.0, 20.0):
        health = None if rate is None else dict(HEALTH, events_per_second=rate)
        model.observe_status({"children": {"alpaca": {"health": health}}})
    assert list(model.rates["alpaca"]) == [None, 40.0, 20.0]
    assert row(text(feeds_table(model.status, model.rates)), "alpaca")[3:5] == ["20.0", "█▅"]


def test_sparkline_scales_to_the_largest_value():
    assert sparkline([0.0, 1.0, 2.0, 7.0]) == "▁▂▃█"
    assert sparkline([None, 0.0, 0.0]) == " ▁▁"
    assert sparkline([]) == ""


def test_durations_and_sizes():
    assert [duration(s) for s in (None, 0.4, 59.9, 61, 3600, 90061)] == \
        ["-", "0s", "59s", "1m01s", "1h00m", "1d01h"]
    assert [size(n) for n in (None, 512, 2048, 3 * 2**30, 5 * 2**40)] == \
        ["-", "512 B", "2.0 KiB", "3.0 GiB", "5120.0 GiB"]


def test_the_book_shows_each_symbols_quotes_and_bbos_in_the_chosen_order():
    model = Model(("BTC-USD", "AAPL", "MSFT"), history=30)
    model.observe_top(aged_quote("AAPL", "polygon", 187.10, 187.14, age=12.0))
    model.observe_top(aged_quote("AAPL", bid=187.12, ask=187.13))
    model.observe_top(Bbo(provider="coinbase", symbol="BTC-USD", ts_event=1,
                          ts_recv=int(NOW * 1e9), bid_price=0.0, bid_size=0.0,
                          ask_price=64123.45, ask_size=0.25))
    assert model.waiting() == ["MSFT"]
    frame = text(book_table(model.symbols, model.tops, NOW))
    lines = [line.split()[0] for line in frame.splitlines()[3:] if line.strip()]
    assert lines == ["BTC-USD", "AAPL", "AAPL", "MSFT"]
    assert row(frame, "BTC-USD") == ["BTC-USD", "-", "64123.45 x 0.25", "-", "coinbase", "bbo",
                                     "0.0s"]
    assert row(frame, "AAPL") == ["AAPL", "100 x 187.12", "187.13 x 200", "0.01", "alpaca",
                                  "quote", "0.5s"]
    assert row(frame, "MSFT") == ["MSFT", "-", "-", "-", "-", "-", "no quote yet"]
    assert "12s" in frame  # polygon's older quote


def test_a_newer_quote_replaces_the_last_of_its_provider():
    model = Model(("AAPL",), history=30)
    model.observe_top(aged_quote("AAPL", bid=1.0, ask=2.0))
    model.observe_top(aged_quote("AAPL", bid=3.0, ask=4.0))
    assert row(text(book_table(model.symbols, model.tops, NOW)), "AAPL")[1] == "100 x 3"


def test_a_supervisor_that_stops_answering_is_said_above_its_last_answer():
    model = Model((), history=30)
    model.observe_status(STATUS)
    model.observe_failure("no supervisor answered at ipc:///x/control within 2 s")
    frame = text(render(model, NOW))
    assert "no answer: no supervisor answered at ipc:///x/control within 2 s" in frame
    assert row(frame, "alpaca")[1] == "running"


def test_the_book_subscribes_to_exact_topics_of_known_providers_only():
    assert book_patterns(("AAPL",), set()) == ["quote.*.AAPL", "bbo.*.AAPL"]
    assert book_patterns(("AAPL", "BRK.B"), {"polygon", "alpaca"}) == [
        "quote.alpaca.AAPL", "quote.polygon.AAPL", "bbo.alpaca.AAPL", "bbo.polygon.AAPL",
        "quote.alpaca.BRK.B", "quote.polygon.BRK.B", "bbo.alpaca.BRK.B", "bbo.polygon.BRK.B"]


# --- `tickmesh top --once` on a real system ------------------------------------------------

def alpaca_system(run_dir: Path) -> Path:
    """An Alpaca simulator and handler, of AAPL and AAPLX."""
    port = free_port()
    symbols = ["AAPL", "AAPLX"]
    return write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": port, "rate": 50, "symbols": symbols}),
        child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                   {"url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": symbols},
                   after=["alpaca-sim"]))


def wait_for_quotes(run_dir: Path, symbols: set[str]) -> None:
    seen: set[str] = set()

    def all_quoted() -> bool:
        event = quotes.recv(timeout=0.1)
        seen.update([event.symbol] if event else [])
        return seen >= symbols

    with Subscriber(f"ipc://{run_dir}/subscribe", ["quote.alpaca"]) as quotes:
        wait_until(all_quoted, timeout=15, interval=0, what=f"quotes of {symbols}")


def feed_flowing(supervisor: Running) -> bool:
    health = (supervisor.child("alpaca") or {}).get("health") or {}
    return bool(health.get("feed") and health["events_per_second"])


@pytest.mark.timeout(40)
def test_top_once_shows_every_process_the_feed_and_the_symbols_quote(spawn, run_dir):
    supervisor = Running(spawn, run_dir, alpaca_system(run_dir))
    wait_for_quotes(run_dir, {"AAPL", "AAPLX"})
    wait_until(lambda: feed_flowing(supervisor), timeout=10, what="the feed's health")
    result = tickmesh(spawn, run_dir, "top", "--once", "--symbols", "AAPL")
    assert result.code == 0, result.err
    assert "\x1b" not in result.out  # plain text: stdout is no terminal
    processes = section(result.out, "Processes")
    for name in ("supervisor", "forwarder", "alpaca-sim", "alpaca"):
        assert row(processes, name)[1] == "running"
    feed = row(section(result.out, "Feeds"), "alpaca")
    assert feed[1:3] == ["alpaca", "subscribed"] and float(feed[3]) > 0
    book = section(result.out, "Top of book")
    assert row(book, "AAPL")[4:6] == ["alpaca", "quote"]
    assert "AAPLX" not in book  # exact symbols: AAPL's topic is no prefix of AAPLX's


@pytest.mark.timeout(20)
def test_top_without_a_supervisor_names_the_run_dir(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "top", "--once")
    assert result.code == 1 and f"no running system found in {run_dir}" in result.err
    config = write_config(run_dir, child_toml("ticker", TICKER))
    result = tickmesh(spawn, run_dir, "top", "--once", str(config))
    assert result.code == 1
    assert f"no supervisor answered at ipc://{run_dir}/control" in result.err
    assert f"(run dir {run_dir})" in result.err


@pytest.mark.timeout(20)
def test_top_refuses_a_symbol_no_topic_can_have(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "top", "--once", "--symbols", "AAPL,A|B")
    assert result.code == 2 and "--symbols: 'A|B' is not a symbol" in result.err


@pytest.mark.timeout(20)
def test_top_without_a_terminal_prints_a_frame_every_interval(spawn, run_dir):
    supervisor = Running(spawn, run_dir, write_config(run_dir, child_toml("ticker", TICKER)))
    supervisor.wait_for("ticker", "running")
    top = spawn([*TICKMESH, "top", "--interval", "0.2"], env=env(run_dir),
                stdout=subprocess.PIPE, text=True)
    frames: list[list[str]] = []

    def two_frames() -> bool:
        line = top.stdout.readline()
        if line.startswith("tickmesh top"):
            frames.append([])
        elif frames:
            frames[-1].append(line)
        return len(frames) > 2

    wait_until(two_frames, timeout=10, interval=0, what="frames from `top` without --once")
    assert all(row("".join(frame), "ticker")[1] == "running" for frame in frames[:2])


# --- issue 20: `q` quits the live dashboard; the book defaults to the config's symbols -------

def test_without_symbols_the_book_takes_each_handlers_first_symbols_then_their_second(run_dir):
    config = write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": 1, "symbols": ["SIMONLY", "AAPL"]}),
        child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                   {"url": "ws://127.0.0.1:1/v2/iex", "symbols": ["AAPL", "MSFT", "NVDA"]}),
        child_toml("polygon", "tickmesh.handlers.polygon.handler",
                   {"url": "ws://127.0.0.1:2/stocks", "symbols": ["AAPL", "TSLA"]}),
        child_toml("coinbase", "tickmesh.handlers.coinbase.handler",
                   {"url": "ws://127.0.0.1:3", "symbols": ["BTC-USD", "ETH-USD"]}),
        child_toml("ticker", TICKER))
    assert config_symbols(str(config)) == ("AAPL", "BTC-USD", "MSFT")
    assert config_symbols(str(config), count=10) == ("AAPL", "BTC-USD", "MSFT", "TSLA",
                                                     "ETH-USD", "NVDA")
    assert config_symbols(str(run_dir / "gone.toml")) == ()
    assert config_symbols(None) == ()


@pytest.mark.timeout(40)
def test_top_once_without_symbols_shows_the_configs_first_symbols(spawn, run_dir):
    supervisor = Running(spawn, run_dir, alpaca_system(run_dir))
    wait_for_quotes(run_dir, {"AAPL", "AAPLX"})
    wait_until(lambda: feed_flowing(supervisor), timeout=10, what="the feed's health")
    result = tickmesh(spawn, run_dir, "top", "--once")
    assert result.code == 0, result.err
    book = section(result.out, "Top of book")
    assert row(book, "AAPL")[4:6] == ["alpaca", "quote"]
    assert row(book, "AAPLX")[4:6] == ["alpaca", "quote"]


class Terminal:
    """A pseudo-terminal (200x50) for `tickmesh top`: the test writes keys to its master
    side and reads (and so drains) what is drawn; the process gets the slave side as stdin,
    stdout and stderr, and as its controlling terminal (so that Ctrl-C is a SIGINT)."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.modes = termios.tcgetattr(self.slave)
        self.output = b""

    def spawn_top(self, spawn, run_dir: Path, *args: str) -> subprocess.Popen:
        return spawn([*TICKMESH, "top", *args], env={**env(run_dir), "TERM": "xterm-256color"},
                     stdin=self.slave, stdout=self.slave, stderr=self.slave,
                     preexec_fn=_take_the_terminal)

    def drain(self) -> None:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def in_cbreak_mode(self) -> bool:
        self.drain()
        lflag = termios.tcgetattr(self.slave)[3]
        return not lflag & termios.ICANON and not lflag & termios.ECHO

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def _take_the_terminal() -> None:
    """In the child, after setsid: make stdin (the pty's slave) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.fixture
def terminal():
    opened = Terminal()
    yield opened
    opened.close()


def live_top(spawn, run_dir: Path, terminal: Terminal) -> subprocess.Popen:
    """`top` redrawing on the terminal, on a running system, once it reads keys."""
    supervisor = Running(spawn, run_dir, write_config(run_dir, child_toml("ticker", TICKER)))
    supervisor.wait_for("ticker", "running")
    top = terminal.spawn_top(spawn, run_dir, "--interval", "0.2")
    wait_until(terminal.in_cbreak_mode, timeout=10, interval=0, what="top to read keys")

    def drawn() -> bool:
        terminal.drain()
        return b"ticker" in terminal.output and b"Processes" in terminal.output

    wait_until(drawn, timeout=10, interval=0, what="top's first frame on the terminal")
    return top


def exited(top: subprocess.Popen, terminal: Terminal) -> bool:
    terminal.drain()
    return top.poll() is not None


@pytest.mark.timeout(40)
def test_q_quits_the_live_dashboard_and_restores_the_terminal(spawn, run_dir, terminal):
    top = live_top(spawn, run_dir, terminal)
    os.write(terminal.master, b"x")  # any other key: top goes on
    frames = terminal.output.count(b"Processes")
    wait_until(lambda: exited(top, terminal) or terminal.output.count(b"Processes") > frames + 1,
               timeout=10, interval=0, what="two more frames after the key x")
    assert top.poll() is None
    os.write(terminal.master, b"q")
    wait_until(lambda: exited(top, terminal), timeout=5, interval=0, what="top to quit on q")
    assert top.returncode == 0, terminal.output.decode(errors="replace")[-2000:]
    assert termios.tcgetattr(terminal.slave) == terminal.modes


@pytest.mark.timeout(40)
def test_ctrl_c_quits_the_live_dashboard_and_restores_the_terminal(spawn, run_dir, terminal):
    top = live_top(spawn, run_dir, terminal)
    os.write(terminal.master, b"\x03")  # the terminal's INTR: a SIGINT to top
    wait_until(lambda: exited(top, terminal), timeout=5, interval=0, what="top to quit")
    assert top.returncode == 0, terminal.output.decode(errors="replace")[-2000:]
    assert b"Traceback" not in terminal.output
    assert termios.tcgetattr(terminal.slave) == terminal.modes
