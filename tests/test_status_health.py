"""`tickmesh status` tells each process's health: a handler whose provider does not answer is
shown reconnecting, not connected, in the table and in --json; the supervisor is a row too."""

import json

import pytest

from tests.conftest import free_port
from tests.supervised import Running, child_toml, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_status_shows_a_handler_that_cannot_connect_as_reconnecting(spawn, run_dir):
    nobody = free_port()  # nothing listens there: every attempt is refused
    config = write_config(run_dir, child_toml("feed-a", "handlers.alpaca.handler", {
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
