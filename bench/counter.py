"""The benchmark's consumer: a process of its own that counts the Alpaca trades the bus delivers
and reads the handler's CPU time over the same span.

usage: python -m bench.counter SUBSCRIBE_ENDPOINT EXPECTED
A raw ZeroMQ SUB on "trade.alpaca." (the cheapest possible consumer, so that the handler is what
is measured). Prints "ready" once subscribed, then reads the handler's pid from stdin. From the
first trade to the EXPECTED-th (or to the last one before IDLE_S without any), measures the wall
time and the handler's CPU time (utime + stime from /proc), checks that the last event is a
trade in standard msgpack, and prints one JSON line {"events", "seconds", "cpu_seconds",
"rss_mb"} (the last: its own resident set then).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import msgpack
import zmq

from tickmesh.bus import sockets
from tickmesh.runtime.lifeline import exit_with_parent

PREFIX = b"trade.alpaca."
FIRST_EVENT_TIMEOUT_S = 60
IDLE_S = 1.0
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def subscribe(endpoint: str) -> zmq.Socket:
    return sockets.subscriber(endpoint, [PREFIX], sockets.DEFAULT_HWM)


def count(socket: zmq.Socket, handler_pid: int, expected: int) -> dict:
    """Receive until `expected` trades came or the bus went quiet; the tally as a dict."""
    recv, clock = socket.recv, time.perf_counter
    socket.setsockopt(zmq.RCVTIMEO, FIRST_EVENT_TIMEOUT_S * 1000)
    recv()
    payload = recv()
    first, cpu_first = clock(), cpu_seconds(handler_pid)
    last, events = first, 1
    socket.setsockopt(zmq.RCVTIMEO, int(IDLE_S * 1000))
    try:
        while events < expected:
            recv()
            payload = recv()
            last = clock()
            events += 1
    except zmq.Again:
        pass
    cpu = cpu_seconds(handler_pid) - cpu_first
    kind = msgpack.unpackb(payload).get("k")
    if kind != "trade":
        raise SystemExit(f"the last event is not a standard msgpack trade map: k={kind!r}")
    return {"events": events, "seconds": last - first, "cpu_seconds": cpu, "rss_mb": rss_mb()}


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("expected", type=int)
    args = parser.parse_args()
    exit_with_parent()
    socket = subscribe(args.endpoint)
    print("ready", flush=True)
    handler_pid = int(sys.stdin.readline())
    try:
        tally = count(socket, handler_pid, args.expected)
    except zmq.Again:
        raise SystemExit(f"no trade within {FIRST_EVENT_TIMEOUT_S} s") from None
    print(json.dumps(tally), flush=True)


if __name__ == "__main__":
    main()
