"""The consumer SDK: a function consumer and a class consumer, run by `tickmesh consume` and by
a supervisor from a config, each getting its events, heartbeating with its metrics, surviving
a handler that raises and a restart of the forwarder, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tickmesh.bus import Heartbeat, Publisher
from tickmesh.bus.events import encode
from tickmesh.bus.topics import topic
from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.consumer import Consumer, ConsumerError, default_name, resolve
from tests.buslog import BusLog
from tests.conftest import wait_for_forwarder
from tests.publishing import feed_until, trade
from tests.supervised import TICKMESH, Running, child_toml, tickmesh, write_config
from tests.waiting import wait_until


def log_lines(path: Path, event: str, process: str | None = None) -> list[dict]:
    """The JSON log lines of `event` (of `process`) in a log that several processes share, where
    one process's line may land inside another's."""
    records = []
    decoder = json.JSONDecoder()
    text = path.read_text()
    at = text.find("{")
    while at >= 0:
        try:
            record, end = decoder.raw_decode(text, at)
        except ValueError:
            end = at + 1
        else:
            records.append(record)
        at = text.find("{", end)
    return [r for r in records if isinstance(r, dict) and r.get("event") == event
            and (process is None or r.get("process") == process)]


def consume(spawn, run_dir: Path, bus: BusConfig, *args: str) -> tuple[subprocess.Popen, Path]:
    """`tickmesh consume ARGS --config` (a config naming only this bus), stderr in a file."""
    config = run_dir / "bus.toml"
    config.write_text(f'[bus]\npublish = "{bus.publish}"\nsubscribe = "{bus.subscribe}"\n'
                      f'[supervisor]\ncontrol = "ipc://{run_dir}/control"\n')
    log_path = run_dir / f"consume-{len(list(run_dir.glob('consume-*')))}.log"
    with log_path.open("w") as log:
        proc = spawn([*TICKMESH, "consume", *args, "--config", str(config)], stderr=log)
    return proc, log_path


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=10)


def test_resolve_takes_a_consumer_a_class_an_instance_or_a_bare_function():
    echo = resolve("tests.sdk_consumers:echo")
    assert isinstance(echo, Consumer) and echo.patterns == ("trade.sdk",)
    counter = resolve("tests.sdk_consumers:Counter")
    assert counter.patterns == ("trade.sdk",) and counter.on_stop is not None
    assert resolve("tests.sdk_consumers:bare").patterns == ()
    for target, why in (("tests.sdk_consumers", "module:attribute"),
                        ("tests.nowhere:x", "no module named"),
                        ("tests.sdk_consumers:nope", "no attribute"),
                        ("tests.sdk_consumers:annotations", "not a consumer")):
        with pytest.raises(ConsumerError, match=why):
            resolve(target)
    assert default_name("tickmesh.examples.spread:Spread_Monitor") == "consume-spread_monitor"


def test_a_function_consumer_run_by_tickmesh_consume(forwarder, spawn, run_dir):
    proc, log_path = consume(spawn, run_dir, forwarder, "tests.sdk_consumers:echo")
    publisher = Publisher(forwarder.publish)
    with BusLog(forwarder.subscribe, ["heartbeat.consume-echo"]) as bus:
        feed_until(publisher, [trade("AAPL", provider="sdk")], lambda: log_lines(log_path, "got"),
                   "the consumer's first event")
        publisher.publish(trade("BOOM", provider="sdk"))
        publisher.publish(trade("NOTME", provider="other"))
        feed_until(publisher, [trade("AFTER", provider="sdk")],
                   lambda: any(line["symbol"] == "AFTER" for line in log_lines(log_path, "got")),
                   "an event after the handler raised")
        beat = bus.until(lambda _: (b := bus.heartbeat("consume-echo")) and b.metric(
            "consumer_errors", hook="on_event") == 1 and b, what="a heartbeat with the error")
    publisher.close()
    assert beat.metric("events_received") >= 3
    assert stop(proc) == 0
    assert {line["symbol"] for line in log_lines(log_path, "got")} == {"AAPL", "AFTER"}
    assert log_lines(log_path, "consumer hook raised")[0]["hook"] == "on_event"
    assert log_lines(log_path, "process stopped")[0]["code"] == 0


def test_a_class_consumer_with_its_patterns_replaced_survives_a_forwarder_restart(
        spawn_child, bus_endpoints, spawn, run_dir):
    forwarder = spawn_child("tickmesh.runtime.forwarder", "forwarder")
    wait_for_forwarder(bus_endpoints)
    proc, log_path = consume(spawn, run_dir, bus_endpoints, "tests.sdk_consumers:Counter",
                             "--pattern", "trade.other.X", "--name", "counter")
    publisher = Publisher(bus_endpoints.publish)
    publisher.publish(trade("IGNORED", provider="sdk"))
    feed_until(publisher, [trade("X", provider="other")], lambda: log_lines(log_path, "got"),
               "the consumer's first event")
    forwarder.kill()
    forwarder.wait(timeout=5)
    before = len(log_lines(log_path, "got"))
    spawn_child("tickmesh.runtime.forwarder", "forwarder")  # binds the same endpoints again
    with BusLog(bus_endpoints.subscribe, ["heartbeat.counter"]) as bus:  # the new forwarder's
        feed_until(publisher, [trade("X", provider="other")],
                   lambda: bus.read() and (b := bus.heartbeat("counter"))
                   and b.metric("events_received") > before
                   and len(log_lines(log_path, "got")) > before,
                   "events and heartbeats through the new forwarder", timeout=20)
    publisher.close()
    assert proc.poll() is None  # the same process all along
    assert stop(proc) == 0
    assert {line["symbol"] for line in log_lines(log_path, "got")} == {"X"}
    assert log_lines(log_path, "started")[0]["name"] == "counter"
    assert log_lines(log_path, "stopped cleanly")[0]["seen"] == len(log_lines(log_path, "got"))


def test_consumers_listed_in_a_config_run_under_the_supervisor(spawn, run_dir):
    target = "tickmesh.runtime.consumer"
    config = write_config(
        run_dir,
        child_toml("echo", target, {"target": "tests.sdk_consumers:echo"}),
        child_toml("counter", target, {"target": "tests.sdk_consumers:Counter"}),
        child_toml("bare", target, {"target": "tests.sdk_consumers:bare",
                                    "patterns": ["trade.sdk.X"]}))
    system = Running(spawn, run_dir, config)
    status = system.wait_all_running(timeout=20)
    pids = {name: status["children"][name]["pid"] for name in ("echo", "counter", "bare")}
    publisher = Publisher(f"ipc://{run_dir}/publish")
    with BusLog(f"ipc://{run_dir}/subscribe", ["heartbeat"]) as bus:
        def everyone_received(since: int = 0) -> bool:
            bus.read()
            beats = [bus.heartbeat(name, since) for name in pids]
            return all(b and b.metric("events_received") > 0 for b in beats)

        feed_until(publisher, [trade("X", provider="sdk")], everyone_received,
                   "events at every consumer")
        os.kill(status["children"]["forwarder"]["pid"], signal.SIGKILL)
        wait_until(lambda: (f := system.child("forwarder")) and f["restarts"] >= 1
                   and f["state"] == "running", timeout=15, what="the forwarder to restart")
        mark = bus.mark()
        seen = {name: len(log_lines(system.log_path, "got", name)) for name in ("echo", "counter")}
        feed_until(publisher, [trade("X", provider="sdk")],
                   lambda: all(len(log_lines(system.log_path, "got", name)) > count
                               for name, count in seen.items()) and everyone_received(mark),
                   "events and heartbeats after the forwarder's restart", timeout=20)
    publisher.close()
    after = system.status()["children"]
    assert {name: after[name]["pid"] for name in pids} == pids  # survived, not restarted
    system.process.send_signal(signal.SIGTERM)
    assert system.process.wait(timeout=15) == 0
    assert log_lines(system.log_path, "stopped cleanly", "counter")
    assert [line["code"] for line in log_lines(system.log_path, "process stopped")
            if line["process"] in pids] == [0, 0, 0]


def test_tickmesh_check_refuses_a_consumer_whose_target_is_missing(spawn, run_dir):
    config = write_config(
        run_dir,
        child_toml("nope", "tickmesh.runtime.consumer", {"target": "tests.sdk_consumers:nope"}),
        child_toml("bare", "tickmesh.runtime.consumer", {"target": "tests.sdk_consumers:bare"}),
        child_toml("fine", "tickmesh.runtime.consumer", {"target": "tests.sdk_consumers:echo"}))
    result = tickmesh(spawn, run_dir, "check", str(config))
    assert result.code == 2
    assert ("children[0] (nope).settings.target: tests.sdk_consumers has no attribute 'nope'"
            in result.err)
    assert "children[1] (bare).settings.patterns: required" in result.err
    assert "children[2]" not in result.err


def test_tickmesh_consume_refuses_a_bad_target_at_once(forwarder, spawn, run_dir):
    proc, log_path = consume(spawn, run_dir, forwarder, "tests.sdk_consumers:nope")
    assert proc.wait(timeout=15) == 2
    assert "settings.target: tests.sdk_consumers has no attribute 'nope'" in log_path.read_text()


def test_a_gap_is_told_right_before_the_event_that_revealed_it(forwarder, spawn, run_dir):
    proc, log_path = consume(spawn, run_dir, forwarder, "tests.sdk_consumers:Ordered")
    publisher = Publisher(forwarder.publish)
    epoch = 7

    def send(seq: int) -> None:  # numbered by hand: the gap is a skip of five numbers
        event = trade("X", provider="order", seq=seq, epoch=epoch)
        publisher.publish_raw(topic("trade", "order", "X"), encode(event))

    feed_until(publisher, [trade("Y", provider="order")],
               lambda: send(1) or log_lines(log_path, "in order"), "the consumer's first event")
    told_before = len(log_lines(log_path, "in order"))
    for seq in (*range(2, 22), *range(27, 47)):  # a burst: the SDK takes it in batches
        send(seq)
    send(46)  # a duplicate: dropped, never handed over
    last = Heartbeat(provider="order", ts_event=1, ts_recv=1, pid=1, final=True)
    last.seq, last.epoch = 1, epoch  # the publisher says it stopped
    publisher.publish_raw(topic("heartbeat", "order"), encode(last))
    wait_until(lambda: any("gone" in line for line in log_lines(log_path, "in order")),
               timeout=15, what="the publisher's stop")
    publisher.close()
    assert stop(proc) == 0
    told = [line.get("seq", tuple(line.get("gap", line.get("gone", ()))))
            for line in log_lines(log_path, "in order")[told_before:]]
    told = [item for item in told if item != 1]  # the first ones, sent until it listened
    assert told == [*range(2, 22), (22, 27), *range(27, 47), ("PublisherStopped", "order")]
