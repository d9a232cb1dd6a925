"""`tickmesh status` tells each process's health: a handler whose provider does not answer is
shown reconnecting, not connected, in the table and in --json; the supervisor is a row too. A
handler stopped with `tickmesh stop` is shown stopped, and a hung one silent, with no stale
rate, in status, top and the supervisor's "system" line."""

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.supervised import Running, child_toml, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_status_shows_a_handler_that_cannot_connect_as_reconnecting(spawn, run_dir):
    nobody = free_port()  # nothing listens there: every attempt is refused
    config = write_config(run_dir, child_toml("feed-a", "tickmesh.handlers.alpaca.handler", {
        "url": f"ws://127.0.0.1:{nobody}/v2/iex", "symbols": ["AAPL"],
        "backoff_min": 0.05, "backoff_max": 0.2}))
    supervisor = Running(spawn, run_dir, config)

    def reconnects() -> int:
        child = supervisor.child("feed-a")
        health = child and child["health"]
        return health["reconnects"] if health and health["feed"] else 0

    wait_until(lambda: reconnects() >= 2, timeout=15, what="feed-a to reconnect twice")
    answer = tickmesh(spawn, run_dir, "status", str(config), "--json")
    assert answer.code == 0, answer.err
    status = json.loads(answer.out)
    child = status["children"]["feed-a"]
    health, feed = child["health"], child["health"]["feed"]
    assert child["state"] == "running" and child["cpu_percent"] >= 0 and child["rss_bytes"] > 0
    assert feed["provider"] == "alpaca"  # its topic source, not its process name
    assert feed["state"] in ("connecting", "disconnected") and feed["connected"] is False
    assert "refused" in feed["last_error"]["message"].lower()
    assert health["events_published"] == 0 and health["last_event_age"] is None
    assert health["heartbeat_age"] < 5
    wait_until(lambda: reconnects() > health["reconnects"], timeout=10,
               what="the reconnects to go on growing")
    assert status["supervisor"]["pid"] == status["pid"]
    assert status["supervisor"]["health"]["heartbeat_age"] < 5

    table = tickmesh(spawn, run_dir, "status", str(config))
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert all(len(line) <= 120 for line in lines)
    feeds = lines.index("", 2) + 1  # the processes' table, a blank line, the feeds'
    rows = {line.split()[0]: line.split() for line in lines[3:feeds - 1]}
    assert list(rows) == ["supervisor", "forwarder", "feed-a"]
    assert [rows["supervisor"][1], rows["supervisor"][3]] == ["running", str(status["pid"])]
    assert rows["feed-a"][1] == "running" and rows["forwarder"][1] == "running"
    assert lines[feeds].split()[:8] == ["process", "provider", "connection", "events/s",
                                        "last_event", "gaps", "reconnects", "resyncing"]
    feed_row = lines[feeds + 1].split()
    assert feed_row[:2] == ["feed-a", "alpaca"]
    assert feed_row[2] in ("connecting", "disconnected") and int(feed_row[6]) >= 2



# --- a stopped or silent handler tells no stale rate (issue 16) -----------------------------

def alpaca_system(run_dir: Path) -> Path:
    port = free_port()
    return write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": port, "rate": 50, "symbols": ["AAPL"]}),
        child_toml("alpaca", "tickmesh.handlers.alpaca.handler",
                   {"url": f"ws://127.0.0.1:{port}/v2/iex", "symbols": ["AAPL"]},
                   after=["alpaca-sim"], shutdown_timeout=0.5))


def alpaca_health(supervisor: Running) -> dict[str, Any]:
    return (supervisor.child("alpaca") or {}).get("health") or {}


def flowing(supervisor: Running) -> dict[str, Any] | None:
    health = alpaca_health(supervisor)
    subscribed = (health.get("feed") or {}).get("state") == "subscribed"
    return health if subscribed and health["events_per_second"] else None


def feed_state(supervisor: Running) -> str | None:
    return (alpaca_health(supervisor).get("feed") or {}).get("state")


def system_lines(supervisor: Running) -> list[dict[str, Any]]:
    return [line for line in supervisor.log_events() if line["event"] == "system"]


def cells(text: str, first: str, after: str = "") -> list[str]:
    """The cells (2+ spaces apart) of the first line of `text` after `after` that starts with
    `first` and a space."""
    lines = text.split(after, 1)[1].splitlines() if after else text.splitlines()
    return re.split(r" {2,}", next(line for line in lines if line.startswith(f"{first} ")))


def test_a_stopped_handler_is_shown_stopped_with_no_stale_rate(spawn, run_dir):
    supervisor = Running(spawn, run_dir, alpaca_system(run_dir))
    wait_until(lambda: flowing(supervisor), timeout=15, what="alpaca's feed flowing")
    stop = tickmesh(spawn, run_dir, "stop", "alpaca")
    assert stop.code == 0, stop.err
    wait_until(lambda: supervisor.child("alpaca")["state"] == "stopped"
               and feed_state(supervisor) == "stopped", timeout=10,
               what="status to say alpaca and its feed stopped")
    said = len(system_lines(supervisor))

    answer = tickmesh(spawn, run_dir, "status", "--json")
    health = json.loads(answer.out)["children"]["alpaca"]["health"]
    assert (health["feed"]["state"], health["feed"]["connected"]) == ("stopped", False)
    assert health["events_per_second"] == 0.0
    table = tickmesh(spawn, run_dir, "status").out
    assert cells(table, "alpaca", after="\nprocess ")[2:4] == ["stopped", "0.0"]
    top = tickmesh(spawn, run_dir, "top", "--once").out
    assert cells(top, "alpaca", after="\nFeeds")[2:4] == ["stopped", "0.0"]

    # the supervisor's next "system" line (10 s after its start, then every minute)
    line = wait_until(lambda: system_lines(supervisor)[said:], timeout=15,
                      what="a system line after the stop")[0]
    assert "alpaca stopped" in line["not_running"]
    assert "alpaca stopped" in line["feeds"] and not re.search(r"alpaca \w+ \d+/s",
                                                               line["feeds"])


def test_a_hung_handler_is_shown_silent_then_stopped_once_killed(spawn, run_dir):
    supervisor = Running(spawn, run_dir, alpaca_system(run_dir))
    wait_until(lambda: flowing(supervisor), timeout=15, what="alpaca's feed flowing")
    os.kill(supervisor.child("alpaca")["pid"], signal.SIGSTOP)
    wait_until(lambda: feed_state(supervisor) == "silent", timeout=10,
               what="status to say alpaca's feed silent")
    child = supervisor.child("alpaca")
    assert child["state"] == "running"  # hung, not restarted: nobody asked
    assert child["health"]["events_per_second"] == 0.0
    assert child["health"]["feed"]["connected"] is False
    # stopped, it ignores SIGTERM and is killed: no final heartbeat, but the supervisor knows
    assert tickmesh(spawn, run_dir, "stop", "alpaca").code == 0
    assert supervisor.child("alpaca")["state"] == "stopped"
    assert feed_state(supervisor) == "stopped"
