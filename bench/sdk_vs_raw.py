"""The consumer SDK scenario of `make bench` (issue 21, row 10): how fast the Subscriber SDK
reads every event off the bus, against the loop a user would write by hand instead (a bare
pyzmq SUB socket and msgspec), in the same run; target: the SDK at least 0.8x the loop's rate.

One forwarder process (runtime.forwarder, as bench.two_lines starts it) runs for the whole
scenario. Per run, each side in turn (the raw loop first in every other run, so that neither
always goes first): a consumer process subscribed to every event, and a publisher process (our
Publisher, as bench.line_ends publishes) that blasts MESSAGES trades over 100 symbols. Every
queue on the way holds the whole blast, and the consumer reads none of it until the blast is
all there (the publisher's last message, an "END" trade, has reached a second socket of the
consumer's, which takes only that and the warm-up trades): what is measured is how fast the
consumer drains a full queue, not how fast the publisher and the forwarder fill it (on 2
cores a live blast would cap the faster consumer at the publisher's rate). Then, from the
first trade of the blast to the last, the consumer counts the trades and measures its wall
time and its CPU time (user + system, libzmq's I/O thread included); a count short of
MESSAGES is what it lost.

- sdk: `Subscriber(endpoint)` (no patterns: every event), read with `recv(timeout=...)` as
  `for event in sub` reads (the timeout only ends a run that lost messages): every message
  decoded into its typed event and checked against its topic, gap tracking and publisher
  watching on, as by default.
- raw: a pyzmq SUB socket subscribed to b"", `topic = sock.recv()`, `payload = sock.recv()`
  (every message has exactly two frames: docs/events.md) and
  `msgspec.msgpack.Decoder().decode(payload)` (a dict) a message. Not `sock.recv_multipart()`,
  as examples/plain_subscriber.py reads: it asks getsockopt(RCVMORE) twice a message, which
  costs more than the rest of such a loop (the SDK reads the same flag off the topic frame
  instead), so the comparison would be of that idiom, not of the SDK. This loop checks
  nothing: a message of one frame would put it out of step for good (the SDK checks each
  topic frame's `more` flag, part of what its extra time buys).
Each loop's body counts the message if it is a trade (its kind); the forwarder's heartbeat,
once a second, goes through both.

Figures: messages per second read by the SDK against the raw loop (ratio ours / raw, target
0.8); CPU µs per message of each (no target). The details hold each side's messages lost and,
for the SDK, the gaps it told.

usage (the scenario's ends, started by `measure`):
       python -m bench.sdk_vs_raw {publish,sdk,raw} ENDPOINT COUNT --hwm N
- publish (ENDPOINT: the forwarder's publish side): prints "ready", publishes a warm-up trade
  on "WARM" every few ms until "go" on stdin, then COUNT trades (bench.line_ends' pool, BATCH
  a publish_many call) and the END trade; waits for "stop" on stdin and prints one JSON line
  {"events", "seconds"}.
- sdk, raw (ENDPOINT: its subscribe side): the consumer. Prints "ready", then "warm" once a
  warm-up trade came through on both its sockets; waits for END on the second, then reads as
  above and prints one JSON line {"side", "events", "lost", "gaps", "missed", "seconds",
  "cpu_seconds", "io_cpu_seconds"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from subprocess import Popen
from typing import Callable

import msgspec
import zmq

from bench import pipeline, two_lines
from bench.line_ends import (PROVIDER, WARM, WARM_TIMEOUT_S, blast, cpu_seconds, expect, tell,
                             trade, warmed_up)
from bench.processes import Processes
from bench.report import Scenario, scenario
from tickmesh.bus import Subscriber, Trade, topics
from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.lifeline import exit_with_parent

MESSAGES = 400_000  # trades a blast (`make bench --messages`): ~10 s for 3 runs on 2 cores
RUNS = 3
TARGET = 0.8  # the SDK's rate at least this times the raw loop's
SIDES = ("sdk", "raw")
END = "END"
WARM_TOPIC, END_TOPIC = (topics.topic("trade", PROVIDER, name) for name in (WARM, END))
IDLE_S = 1.0  # a consumer that hears nothing for this long has lost the rest
RAW_PEER = "raw loop: pyzmq SUB, recv() x2 + msgspec.msgpack.Decoder() (dicts)"


@dataclass
class Tally:
    """What a consumer read from the first trade of the blast to the last."""

    events: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    io_cpu_seconds: float = 0.0


class Clock:
    """Wall time, the process's CPU time and its main thread's, from `start` to `stop`."""

    def start(self) -> None:
        self._wall, self._cpu, self._main = time.perf_counter(), cpu_seconds(), time.thread_time()

    def stop(self, events: int) -> Tally:
        cpu, main = cpu_seconds() - self._cpu, time.thread_time() - self._main
        return Tally(events, time.perf_counter() - self._wall, cpu, cpu - main)


def publish(endpoint: str, count: int, hwm: int) -> None:
    publisher = warmed_up(endpoint, hwm)
    seconds = blast(publisher, count)
    publisher.publish_many([trade(END, 0.0)])
    sys.stdin.readline()  # "stop": the consumer has it all (or gave up)
    print(json.dumps({"events": count, "seconds": seconds}), flush=True)
    publisher.close(0)


def read_sdk(sub: Subscriber, count: int) -> Tally:
    """Skip to the blast's first trade, then count `count` trades as they are read."""
    recv, clock = sub.recv, Clock()
    while True:
        event = recv(timeout=IDLE_S)
        if event is None:
            return Tally()
        if type(event) is Trade and event.symbol != WARM:
            break
    clock.start()
    trades = 1
    while trades < count:
        event = recv(timeout=IDLE_S)
        if event is None:
            break
        if type(event) is Trade:
            trades += 1
    return clock.stop(trades)


def read_raw(sock: zmq.Socket, count: int) -> Tally:
    """`read_sdk` by hand; the socket's receive timeout (IDLE_S) raises zmq.Again."""
    recv, decode, clock = sock.recv, msgspec.msgpack.Decoder().decode, Clock()
    trades = 0
    try:
        while True:
            _topic, payload = recv(), recv()
            message = decode(payload)
            if message["k"] == "trade" and message["s"] != WARM:
                break
        clock.start()
        trades = 1
        while trades < count:
            _topic, payload = recv(), recv()
            if decode(payload)["k"] == "trade":
                trades += 1
    except zmq.Again:
        if not trades:
            return Tally()
    return clock.stop(trades)


def raw_socket(endpoint: str, hwm: int) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.rcvhwm, sock.rcvtimeo, sock.linger = hwm, int(IDLE_S * 1000), 0
    sock.subscribe(b"")
    sock.connect(endpoint)
    return sock


def wait_warm(warm: Callable[[], bool], side: str) -> None:
    """Until `warm` (which waits IDLE_S at most) reads a warm-up trade."""
    deadline = time.monotonic() + WARM_TIMEOUT_S
    while not warm():
        if time.monotonic() > deadline:
            raise SystemExit(f"{side}: no warm-up trade within {WARM_TIMEOUT_S:g} s")


def sdk_warm(sub: Subscriber) -> bool:
    event = sub.recv(timeout=IDLE_S)
    return isinstance(event, Trade) and event.symbol == WARM


def raw_warm(sock: zmq.Socket) -> bool:
    try:
        topic, payload = sock.recv(), sock.recv()
    except zmq.Again:
        return False
    return topic.startswith(b"trade.") and msgspec.msgpack.decode(payload)["s"] == WARM


def end_socket(endpoint: str) -> zmq.Socket:
    """The consumer's second socket: the warm-up trades (so that we know it is subscribed
    before the blast), then the END trade."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.linger = 0
    for topic in (WARM_TOPIC, END_TOPIC):
        sock.subscribe(topic)
    sock.connect(endpoint)
    return sock


def wait_topic(sock: zmq.Socket, topic: bytes, timeout: float, what: str) -> None:
    """Read `sock` until a message of `topic`; SystemExit after `timeout` s."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(left * 1000) and sock.recv_multipart()[0] == topic:
            return
    raise SystemExit(f"no {what} within {timeout:g} s")


def consume(side: str, endpoint: str, count: int, hwm: int) -> None:
    end = end_socket(endpoint)
    if side == "sdk":
        sub = Subscriber(endpoint, rcvhwm=hwm)
        warm, read_all = (lambda: sdk_warm(sub)), (lambda: read_sdk(sub, count))
    else:
        sock = raw_socket(endpoint, hwm)
        warm, read_all = (lambda: raw_warm(sock)), (lambda: read_raw(sock, count))
    print("ready", flush=True)
    wait_warm(warm, side)
    wait_topic(end, WARM_TOPIC, WARM_TIMEOUT_S, f"{side}: warm-up trade on the END socket")
    print("warm", flush=True)
    wait_topic(end, END_TOPIC, WARM_TIMEOUT_S + count / 10_000, f"{side}: END of the blast")
    tally = read_all()
    gaps, missed = (sub.gaps, sub.missed) if side == "sdk" else (0, 0)
    print(json.dumps({"side": side, "events": tally.events, "lost": count - tally.events,
                      "gaps": gaps, "missed": missed, "seconds": tally.seconds,
                      "cpu_seconds": tally.cpu_seconds, "io_cpu_seconds": tally.io_cpu_seconds}),
          flush=True)


def run(procs: Processes, bus: BusConfig, side: str, trades: int) -> dict:
    """One side: its consumer's tally, with its rate and CPU per message."""
    started: list[Popen] = []

    def start(role: str, endpoint: str) -> Popen:
        argv = [sys.executable, "-m", "bench.sdk_vs_raw", role, endpoint, str(trades), "--hwm",
                str(bus.subscriber_hwm)]
        proc = procs.start(f"{role}-{len(started)}", argv, talk=True)
        started.append(proc)
        expect(proc, "ready", f"bench.sdk_vs_raw {role}")
        return proc

    try:
        consumer = start(side, bus.subscribe)
        publisher = start("publish", bus.publish)
        expect(consumer, "warm", f"bench.sdk_vs_raw {side}")
        tell(publisher, "go")
        consumed = pipeline.last_json(consumer, 60 + trades / 10_000)
        tell(publisher, "stop")
        published = pipeline.last_json(publisher, 10)
    finally:
        for proc in started:
            procs.stop(proc)
    messages = max(consumed["events"] - 1, 1)  # the clock starts at the first
    return {**consumed, "rate": messages / consumed["seconds"] if consumed["seconds"] else 0.0,
            "cpu_us": consumed["cpu_seconds"] / messages * 1e6,
            "io_cpu_us": consumed["io_cpu_seconds"] / messages * 1e6,
            "publish_rate": trades / published["seconds"]}


def measure(trades: int = MESSAGES, runs: int = RUNS) -> list[Scenario]:
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    with Processes() as procs:
        run_dir, hwm = procs.run_dir, two_lines.queue_size(trades)
        bus = BusConfig(f"ipc://{run_dir}/publish", f"ipc://{run_dir}/subscribe", hwm=hwm,
                        subscriber_hwm=hwm)
        two_lines.start_forwarders(procs, bus)
        for number in range(1, runs + 1):
            for side in (SIDES if number % 2 else SIDES[::-1]):
                results[side].append(run(procs, bus, side, trades))
            sdk, raw = results["sdk"][-1], results["raw"][-1]
            ratio = sdk["rate"] / raw["rate"] if raw["rate"] else 0.0
            print(f"sdk run {number}/{runs}: sdk {sdk['rate']:,.0f}/s {sdk['cpu_us']:.2f} CPU "
                  f"µs/message, raw {raw['rate']:,.0f}/s {raw['cpu_us']:.2f} ({ratio:.2f}x), "
                  f"lost {sdk['lost']} / {raw['lost']}, gaps told {sdk['gaps']}", flush=True)

    def each(side: str, key: str) -> list[float]:
        return [r[key] for r in results[side]]

    def median(key: str, digits: int = 2) -> dict[str, float]:
        return {side: round(statistics.median(each(side, key)), digits) for side in SIDES}

    details = {"trades": trades, "lost": {side: each(side, "lost") for side in SIDES},
               "gaps_told": each("sdk", "gaps"), "missed_told": each("sdk", "missed"),
               # of the CPU µs per message, libzmq's I/O thread's (the rest: the Python thread's)
               "io_thread_cpu_us_per_message": median("io_cpu_us"),
               "publish_rate": median("publish_rate", 0)}
    return [
        scenario("sdk-consumer-rate", "messages per second a consumer of every event reads off "
                 "the bus: the Subscriber SDK (typed events, gap tracking) against a hand-written "
                 f"pyzmq + msgspec loop (target: at least {TARGET:g}x its rate)", "messages/s",
                 each("sdk", "rate"), each("raw", "rate"), RAW_PEER, higher_is_better=True,
                 target=TARGET, details=details),
        scenario("sdk-consumer-cpu", "CPU µs per message of that consumer (ratio: the raw "
                 "loop's cost / the SDK's)", "CPU µs/message", each("sdk", "cpu_us"),
                 each("raw", "cpu_us"), RAW_PEER, higher_is_better=False, target=None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("publish", *SIDES))
    parser.add_argument("endpoint")
    parser.add_argument("count", type=int)
    parser.add_argument("--hwm", type=int, required=True)
    args = parser.parse_args()
    exit_with_parent()
    if args.role == "publish":
        publish(args.endpoint, args.count, args.hwm)
    else:
        consume(args.role, args.endpoint, args.count, args.hwm)


if __name__ == "__main__":
    main()
