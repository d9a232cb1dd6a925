"""The latency benchmarks' consumer: a process of its own that receives trades of bench.feed's
plans (through our handler and the bus, or bench.bare_hop's bare publisher) and tells, per phase,
how late each came.

usage: python -m bench.probe ENDPOINT [--patterns P,P,...] [--bare] [--idle S] [--sleep-ms MS]
                             [--rcvhwm N]
- ours (default): the Subscriber SDK (bus.Subscriber, `sub.recv(timeout)` as users write it) on
  the patterns (default trade.alpaca.*). Per trade, stamped at receive with time.time_ns():
  end to end (now - ts_event, the feed's send time) and handler to consumer (now - ts_recv);
- --bare: a raw ZeroMQ SUB on b"trade.bare." reading bench.bare_hop's payloads (the trade id
  and the send time, two int64): end to end only;
- --sleep-ms MS: the slow consumer: sleeps MS per message, forever, and measures nothing
  (its receive queue: --rcvhwm, by default the SDK's, bus.sockets.DEFAULT_RECEIVE_HWM);
- --drain: the least a user's loop does (`while sub.recv(timeout): n += 1`), for
  bench.profile: ends after IDLE seconds without a message and prints {"events": n}.
Prints "ready" once subscribed. Ends after IDLE seconds without a message (once one came), and
prints one JSON line: {"phases": {PHASE: {"count", "measured", "e2e": [p50, p99, p99.9],
"hop": [...], "first_recv", "last_recv"}}, "gaps", "missed", "switches"} (latencies in µs;
"switches": its context switches, [voluntary: woken, involuntary: preempted]; the first
WARMUP of each phase's trades are counted but not measured; first/last_recv in ns).
Latencies go into arrays while receiving and into HDR histograms (hdrhistogram) afterwards, so
that measuring costs the receive loop four appends.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import time
from array import array

import zmq

from bench.feed import ID_BASE
from tickmesh.bus import sockets
from tickmesh.runtime.lifeline import exit_with_parent

WARMUP = 0.2
"""Of each phase's trades (by their position in the phase), the share not measured."""
FIRST_EVENT_TIMEOUT_S = 60.0
"""How long the probe waits for its first message; then IDLE without one ends it."""
BARE_PREFIX = b"trade.bare."
BARE_PAYLOAD = struct.Struct("<qq")  # trade id, send time (ns)
PERCENTILES = (50.0, 99.0, 99.9)


def receive_ours(endpoint: str, patterns: list[str], idle_ms: int) -> tuple[array, ...]:
    from tickmesh.bus import Subscriber

    sub = Subscriber(endpoint, patterns)
    print("ready", flush=True)
    ids, recv_ns, event_ns, handler_ns = array("q"), array("q"), array("q"), array("q")
    time_ns, recv = time.time_ns, sub.recv
    timeout = FIRST_EVENT_TIMEOUT_S
    while (event := recv(timeout)) is not None:
        now = time_ns()
        recv_ns.append(now)
        event_ns.append(event.ts_event)
        handler_ns.append(event.ts_recv)
        ids.append(int(event.trade_id))
        timeout = idle_ms / 1000
    receive_ours.gaps = (sub.gaps, sub.missed)  # type: ignore[attr-defined]
    return ids, recv_ns, event_ns, handler_ns


def receive_bare(endpoint: str, idle_ms: int) -> tuple[array, ...]:
    socket = zmq.Context.instance().socket(zmq.SUB)
    socket.setsockopt(zmq.RCVHWM, sockets.DEFAULT_HWM)
    socket.setsockopt(zmq.SUBSCRIBE, BARE_PREFIX)
    socket.connect(endpoint)
    socket.setsockopt(zmq.RCVTIMEO, int(FIRST_EVENT_TIMEOUT_S * 1000))
    print("ready", flush=True)
    ids, recv_ns, event_ns = array("q"), array("q"), array("q")
    recv, unpack, time_ns = socket.recv, BARE_PAYLOAD.unpack, time.time_ns
    try:
        while True:
            recv()
            payload = recv()
            now = time_ns()
            trade_id, sent = unpack(payload)
            recv_ns.append(now)
            event_ns.append(sent)
            ids.append(trade_id)
            if len(ids) == 1:
                socket.setsockopt(zmq.RCVTIMEO, idle_ms)
    except zmq.Again:
        pass
    return ids, recv_ns, event_ns, array("q")


def percentiles(values: list[int]) -> list[float]:
    """p50, p99, p99.9 in µs of latencies in ns (an HDR histogram, 3 significant digits)."""
    from hdrh.histogram import HdrHistogram

    if not values:
        return [0.0, 0.0, 0.0]
    histogram = HdrHistogram(1, 3_600 * 10**9, 3)
    record = histogram.record_value
    for value in values:
        record(max(1, value))
    return [round(histogram.get_value_at_percentile(p) / 1000, 1) for p in PERCENTILES]


def summarize(ids: array, recv_ns: array, event_ns: array, handler_ns: array) -> dict:
    by_phase: dict[int, list[int]] = {}
    for i, trade_id in enumerate(ids):
        by_phase.setdefault(trade_id // ID_BASE, []).append(i)
    phases = {}
    for phase, indices in sorted(by_phase.items()):
        last_k = max(ids[i] % ID_BASE for i in indices)
        measured = [i for i in indices if ids[i] % ID_BASE >= WARMUP * (last_k + 1)]
        phases[str(phase)] = {
            "count": len(indices), "measured": len(measured),
            "e2e": percentiles([recv_ns[i] - event_ns[i] for i in measured]),
            "hop": percentiles([recv_ns[i] - handler_ns[i] for i in measured])
            if handler_ns else None,
            "first_recv": recv_ns[indices[0]], "last_recv": recv_ns[indices[-1]],
        }
    return {"phases": phases}


def drain(endpoint: str, patterns: list[str], idle_ms: int) -> int:
    from tickmesh.bus import Subscriber

    sub = Subscriber(endpoint, patterns)
    print("ready", flush=True)
    events, recv = 0, sub.recv
    timeout = FIRST_EVENT_TIMEOUT_S
    while recv(timeout) is not None:
        events += 1
        timeout = idle_ms / 1000
    return events


def sleep_forever(endpoint: str, patterns: list[str], sleep_s: float, rcvhwm: int) -> None:
    from tickmesh.bus import Subscriber

    sub = Subscriber(endpoint, patterns, rcvhwm=rcvhwm)
    print("ready", flush=True)
    for _event in sub:
        time.sleep(sleep_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("--patterns", default="trade.alpaca.*")
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--idle", type=float, default=1.5)
    parser.add_argument("--sleep-ms", type=float, default=0.0)
    parser.add_argument("--drain", action="store_true")
    parser.add_argument("--rcvhwm", type=int, default=sockets.DEFAULT_RECEIVE_HWM)
    args = parser.parse_args()
    exit_with_parent()
    patterns = args.patterns.split(",")
    if args.sleep_ms:
        sleep_forever(args.endpoint, patterns, args.sleep_ms / 1000, args.rcvhwm)
        return
    idle_ms = int(args.idle * 1000)
    if args.drain:
        print(json.dumps({"events": drain(args.endpoint, patterns, idle_ms)}), flush=True)
        return
    if args.bare:
        arrays = receive_bare(args.endpoint, idle_ms)
        gaps = (0, 0)
    else:
        arrays = receive_ours(args.endpoint, patterns, idle_ms)
        gaps = receive_ours.gaps  # type: ignore[attr-defined]
    result = summarize(*arrays)
    result["gaps"], result["missed"] = gaps
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["switches"] = [usage.ru_nvcsw, usage.ru_nivcsw]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
