"""The three examples (examples/) each run against a real bus and do what they claim; the plain
one runs with every tickmesh package made unimportable."""

from __future__ import annotations

import subprocess
import sys

from tickmesh.bus import Heartbeat, Publisher
from tickmesh.examples.plain_subscriber import GapCheck
from tests.buslog import BusLog
from tests.conftest import REPO
from tests.publishing import feed_until, quote, trade
from tests.supervised import child_toml, tickmesh, write_config
from tests.test_consumer_sdk import consume, log_lines, stop
from tests.waiting import wait_until

TICKMESH_PACKAGES = ("bus", "runtime", "handlers", "consumers", "supervisor", "tickmesh",
                     "examples", "tests")
NO_TICKMESH = f"""
import runpy, sys
class NoTickmesh:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {TICKMESH_PACKAGES!r}:
            raise ImportError("tickmesh code imported: " + name)
sys.meta_path.insert(0, NoTickmesh())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_spread_monitor_logs_each_quotes_spread_and_warns_when_wide(forwarder, spawn,
                                                                       run_dir):
    proc, log_path = consume(spawn, run_dir, forwarder, "tickmesh.examples.spread:monitor",
                             "--pattern", "quote.*.AAPL")
    publisher = Publisher(forwarder.publish)
    feed_until(publisher, [quote("AAPL", 100.0, 100.5), quote("AAPLX", 1.0, 9.0)],
               lambda: log_lines(log_path, "spread"), "a spread")
    feed_until(publisher, [quote("AAPL", 100.0, 101.0)],
               lambda: any(line["wide"] for line in log_lines(log_path, "spread")), "a wide one")
    publisher.close()
    assert stop(proc) == 0
    lines = log_lines(log_path, "spread")
    assert {line["symbol"] for line in lines} == {"AAPL"}
    narrow = lines[0]
    assert (narrow["spread"], narrow["bps"], narrow["wide"], narrow["level"]) == (
        0.5, 49.875, False, "info")
    wide = next(line for line in lines if line["wide"])
    assert (wide["spread"], wide["bps"], wide["level"]) == (1.0, 99.502, "warning")


def test_the_anomaly_flagger_flags_only_jumps_over_its_threshold(forwarder, spawn, run_dir):
    proc, log_path = consume(spawn, run_dir, forwarder, "tickmesh.examples.anomaly:Flagger")
    publisher = Publisher(forwarder.publish)
    with BusLog(forwarder.subscribe, ["heartbeat.consume-flagger"]) as bus:
        feed_until(publisher, [trade("PROBE", 1.0)], lambda: bus.read()
                   and any(b.metric("events_received") for b in bus.of(Heartbeat)),
                   "the flagger to receive trades")
    for symbol, price in (("AAPL", 100.0), ("MSFT", 300.0), ("AAPL", 100.5), ("AAPL", 102.0),
                          ("MSFT", 296.0), ("AAPL", 101.9)):
        publisher.publish(trade(symbol, price))
    publisher.publish(trade("AAPL", 200.0, provider="polygon"))  # another provider: its own last
    wait_until(lambda: len(log_lines(log_path, "price jump")) >= 2, what="two flags")
    publisher.close()
    assert stop(proc) == 0
    jumps = [(line["symbol"], line["last"], line["price"], line["jump_pct"])
             for line in log_lines(log_path, "price jump")]
    assert jumps == [("AAPL", 100.5, 102.0, 1.4925), ("MSFT", 300.0, 296.0, -1.3333)]
    assert log_lines(log_path, "flagger stopping")[0]["flagged"] == 2


def test_the_plain_subscriber_reads_the_bus_with_no_tickmesh_code(forwarder, spawn):
    script = REPO / "examples" / "plain_subscriber.py"
    proc = spawn([sys.executable, "-c", NO_TICKMESH, str(script), forwarder.subscribe,
                  "trade.alpaca.AAPL|", "--count", "3"], stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True)
    publisher = Publisher(forwarder.publish)
    feed_until(publisher, [trade("AAPL", 126.55), trade("AAPLX", 1.0), trade("AAPL.W", 2.0)],
               lambda: proc.poll() is not None, "the plain subscriber to print three trades")
    publisher.close()
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["trade alpaca AAPL 126.55 x 1.0"] * 3


def test_the_plain_subscribers_gap_check_follows_the_documented_rule():
    check = GapCheck()
    assert check.missed(b"t|", {"e": 1, "q": 1}) == 0
    assert check.missed(b"t|", {"e": 1, "q": 2}) == 0
    assert check.missed(b"t|", {"e": 1, "q": 5}) == 2
    assert check.missed(b"t|", {"e": 2, "q": 1}) == 0  # a restart, not a gap
    assert check.missed(b"u|", {"e": 1, "q": 9}) == 0


def test_the_example_consumers_pass_tickmesh_check_in_a_config(spawn, run_dir):
    config = write_config(
        run_dir,
        child_toml("spread", "tickmesh.runtime.consumer", {"target": "tickmesh.examples.spread:monitor",
                                                  "patterns": ["quote.*.AAPL"]}),
        child_toml("flagger", "tickmesh.runtime.consumer", {"target": "tickmesh.examples.anomaly:sensitive"}))
    result = tickmesh(spawn, run_dir, "check", str(config))
    assert (result.code, result.out.startswith("ok")) == (0, True), result.err
