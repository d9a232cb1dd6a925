"""The two-line scenario's ends (bench.two_lines): a publisher process and a consumer process,
on one bus line or on two, each measuring its own CPU time (resource.getrusage: user + system,
every thread of the process, libzmq's I/O thread included).

usage: python -m bench.line_ends publish ENDPOINTS COUNT [--hwm N]
       python -m bench.line_ends consume ENDPOINTS COUNT [--hwm N]
ENDPOINTS: one endpoint, or line A's and line B's separated by a comma. --hwm: the publisher's
send queue, the consumer's receive queue (default: the bus's, bus.sockets).

- publish: our Publisher (bus.Publisher: one XPUB connected to every line's forwarder). Prints
  "ready", then publishes a warm-up trade on "WARM" every WARM_EVERY_S until "go" on stdin; then
  COUNT trades over SYMBOLS symbols (pre-built, BATCH a publish_many call, as a handler
  publishes a frame), as fast as it can; then waits for "stop" on stdin (by then libzmq's I/O
  thread has long sent everything) and prints one JSON line {"events", "seconds",
  "cpu_seconds"}: the CPU time from just before the first trade to "stop".
- consume: the Subscriber SDK (bus.Subscriber on "trade.bench.*", `sub.recv()` as `for event in
  sub` calls it, heartbeats watched as by default). Prints "ready", then "warm" once the
  publisher's warm-up trades come through every line (with two: once a second copy has been
  dropped, so both forwarders have the publisher's and the consumer's subscriptions); then
  counts the COUNT trades, checking each symbol's sequence numbers are contiguous, until all
  came or none for IDLE_S. Prints one JSON line {"events", "lost", "delivered_twice",
  "out_of_order", "gaps", "missed", "line_duplicates", "line_first", "seconds", "cpu_seconds"}:
  the CPU time and the wall time from the first trade to the last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import select
import sys
import time
from subprocess import Popen
from typing import Iterator

import zmq

from tickmesh.bus import Publisher, Subscriber, Trade, sockets
from tickmesh.bus.messages import Item
from tickmesh.runtime.lifeline import exit_with_parent

PROVIDER = "bench"
PATTERN = f"trade.{PROVIDER}.*"
WARM = "WARM"
SYMBOLS = 100
BATCH = 10
WARM_EVERY_S = 0.005
WARM_TIMEOUT_S = 30.0
IDLE_S = 1.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def symbol_names(count: int = SYMBOLS) -> list[str]:
    return [f"S{i:03d}" for i in range(count)]


def expect(proc: Popen, word: str, who: str) -> None:
    """Read the line an end process prints next ("ready", "warm"); RuntimeError if it is not
    `word`."""
    line = proc.stdout.readline().strip()
    if line != word:
        raise RuntimeError(f"{who} said {line!r}, not {word!r}")


def tell(proc: Popen, word: str) -> None:
    """Say `word` ("go", "stop") on an end process's stdin."""
    proc.stdin.write(f"{word}\n")
    proc.stdin.flush()


def trade(symbol: str, price: float) -> Trade:
    now = time.time_ns()
    return Trade(provider=PROVIDER, symbol=symbol, ts_event=now, ts_recv=now, price=price,
                 size=1.0, trade_id="1")


def stdin_ready(timeout: float) -> bool:
    return bool(select.select([sys.stdin], [], [], timeout)[0])


def warmed_up(endpoints: str | tuple[str, ...], hwm: int) -> Publisher:
    """A publisher that said "ready" and published warm-up trades until "go" came on stdin."""
    publisher = Publisher(endpoints, sndhwm=hwm)
    print("ready", flush=True)
    warm = [trade(WARM, 0.0)]
    deadline = time.monotonic() + WARM_TIMEOUT_S * 2
    while not stdin_ready(WARM_EVERY_S):
        publisher.publish_many(warm)
        if time.monotonic() > deadline:
            raise SystemExit("publish: no go within the warm-up's time")
    sys.stdin.readline()
    return publisher


def blast(publisher: Publisher, count: int) -> float:
    """Publish `count` trades over SYMBOLS symbols, BATCH a call; the seconds it took."""
    names = symbol_names()
    pool = [trade(names[i % SYMBOLS], 100.0 + i % 7) for i in range(SYMBOLS * BATCH)]
    batches = [pool[i:i + BATCH] for i in range(0, len(pool), BATCH)]
    full, rest = divmod(count, BATCH)
    publish_many, started = publisher.publish_many, time.perf_counter()
    for i in range(full):
        publish_many(batches[i % len(batches)])
    if rest:
        publish_many(batches[full % len(batches)][:rest])
    return time.perf_counter() - started


def publish(endpoints: tuple[str, ...], count: int, hwm: int) -> None:
    publisher = warmed_up(endpoints, hwm)
    cpu, main_cpu = cpu_seconds(), time.thread_time()
    seconds = blast(publisher, count)
    sys.stdin.readline()  # "stop": the consumer has it all (or gave up)
    cpu, main_cpu = cpu_seconds() - cpu, time.thread_time() - main_cpu
    print(json.dumps({"events": count, "seconds": seconds, "cpu_seconds": cpu,
                      "io_cpu_seconds": cpu - main_cpu}), flush=True)
    publisher.close(0)


def arrivals(sub: Subscriber, batch: int) -> Iterator[Item]:
    """What the consumer reads, until nothing came for IDLE_S: one event a call of `sub.recv`
    (`batch` 0, as `for event in sub` reads), or batches of `sub.recv_ready(batch)`."""
    if not batch:
        recv = sub.recv
        while (event := recv(timeout=IDLE_S)) is not None:
            yield event
        return
    poller = zmq.Poller()
    for sock in sub.sockets:
        poller.register(sock, zmq.POLLIN)
    recv_ready, idle_until = sub.recv_ready, time.monotonic() + IDLE_S
    while True:
        got = recv_ready(batch)
        if got:
            yield from got
            idle_until = time.monotonic() + IDLE_S
        elif (left := idle_until - time.monotonic()) <= 0:
            return
        else:
            poller.poll(left * 1000)


def consume(endpoints: tuple[str, ...], count: int, hwm: int, batch: int) -> None:
    sub = Subscriber(endpoints, [PATTERN], rcvhwm=hwm)
    print("ready", flush=True)
    deadline = time.monotonic() + WARM_TIMEOUT_S
    while True:  # the warm-up: until it comes through every line
        event = sub.recv(timeout=0.1)
        if event is not None and (len(endpoints) == 1 or sub.arbiter.duplicates):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"consume: no warm-up trade through every line within "
                             f"{WARM_TIMEOUT_S:g} s")
    print("warm", flush=True)
    while (event := sub.recv(timeout=WARM_TIMEOUT_S)) is not None and event.symbol == WARM:
        pass
    if event is None:
        raise SystemExit(f"consume: no trade within {WARM_TIMEOUT_S:g} s of the warm-up")
    clock = time.perf_counter
    cpu_first, main_first, first = cpu_seconds(), time.thread_time(), clock()
    seqs: dict[str, int] = {}
    events = delivered_twice = out_of_order = lost = 0
    for event in itertools.chain((event,), arrivals(sub, batch)):
        symbol = event.symbol
        if symbol != WARM:
            events += 1
            previous = seqs.get(symbol, 0)
            seq = event.seq
            if seq == previous + 1:
                seqs[symbol] = seq
            elif seq <= previous:
                delivered_twice += 1
            else:
                out_of_order += 1  # a number skipped: lost, unless it comes later (it may not)
                lost += seq - previous - 1
                seqs[symbol] = seq
            if events >= count:
                break
    cpu, main_cpu, seconds = cpu_seconds() - cpu_first, time.thread_time() - main_first, \
        clock() - first
    unique = sum(seqs.values()) - lost
    print(json.dumps({
        "events": events, "lost": count - unique, "delivered_twice": delivered_twice,
        "out_of_order": out_of_order, "gaps": sub.gaps, "missed": sub.missed,
        "line_duplicates": sub.arbiter.duplicates if sub.arbiter else 0,
        "line_first": list(sub.arbiter.first) if sub.arbiter else [events, 0],
        "seconds": seconds, "cpu_seconds": cpu, "io_cpu_seconds": cpu - main_cpu}), flush=True)
    sub.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=("publish", "consume"))
    parser.add_argument("endpoints", help="line A's endpoint[,line B's]")
    parser.add_argument("count", type=int)
    parser.add_argument("--hwm", type=int, default=sockets.DEFAULT_HWM)
    parser.add_argument("--batch", type=int, default=0)
    args = parser.parse_args()
    exit_with_parent()
    endpoints = tuple(args.endpoints.split(","))
    if args.side == "publish":
        publish(endpoints, args.count, args.hwm)
    else:
        consume(endpoints, args.count, args.hwm, args.batch)


if __name__ == "__main__":
    main()
