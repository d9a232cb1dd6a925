"""The book benchmarks' clock on our side: a process of its own that watches the bus while the
handler (Binance's, or Kraken's) and the order-book builder (two other processes) turn the
replayed depth stream into books.

usage: python -m bench.book_counter SUBSCRIBE_ENDPOINT TRUTH_JSON [PROVIDER]
PROVIDER: binance (the default) or kraken, whose status and bbo topics it watches.
Subscribes to the handler's status and the builder's bbo, prints "ready", then reads the pids
of the handler and the builder from stdin. The clock starts at the handler's Status
"subscribed" (its SUBSCRIBE acknowledged: the simulator's replay starts) and stops when every
symbol's bbo is its final one (TRUTH_JSON's "bbo": the recording's last event of every symbol
changes its top, so this is when the builder applied the last depthUpdate), or at the last bbo
before IDLE_S without any. Prints one JSON line {"seconds", "cpu_seconds" ([handler,
builder], over the same span), "bbo" (bbo events counted), "final" (symbols at their final bbo),
"gaps" (bus messages this counter missed)}.
"""

from __future__ import annotations

import json
import sys
import time

from bench.counter import cpu_seconds
from tickmesh.bus import events
from tickmesh.bus.subscriber import Subscriber
from tickmesh.runtime.lifeline import exit_with_parent

FIRST_EVENT_TIMEOUT_S = 60
IDLE_S = 2.0


def watch(sub: Subscriber, final: dict[str, tuple], pids: list[int]) -> dict:
    def cpu() -> list[float]:
        return [cpu_seconds(pid) for pid in pids]

    event = sub.recv(FIRST_EVENT_TIMEOUT_S)
    while not (isinstance(event, events.Status) and event.state == "subscribed"):
        if event is None:
            raise SystemExit(f"the handler did not subscribe within {FIRST_EVENT_TIMEOUT_S} s")
        event = sub.recv(FIRST_EVENT_TIMEOUT_S)
    first, cpu_first = time.perf_counter(), cpu()
    last, cpu_last, bbo, pending = first, cpu_first, 0, set(final)
    while pending and (event := sub.recv(IDLE_S)) is not None:
        if isinstance(event, events.Bbo):
            bbo += 1
            last, top = time.perf_counter(), (event.bid_price, event.bid_size,
                                              event.ask_price, event.ask_size)
            if top == final[event.symbol]:
                pending.discard(event.symbol)
            if not pending:
                cpu_last = cpu()
    if pending:
        cpu_last = cpu()
    cpu_used = [end - start for start, end in zip(cpu_first, cpu_last)]
    return {"seconds": last - first, "cpu_seconds": cpu_used, "bbo": bbo,
            "final": len(final) - len(pending), "gaps": sub.missed}


def main() -> None:
    endpoint, truth_path = sys.argv[1:3]
    provider = sys.argv[3] if len(sys.argv) > 3 else "binance"
    exit_with_parent()
    final = {symbol: tuple(top) for symbol, top in
             json.loads(open(truth_path).read())["bbo"].items()}
    sub = Subscriber(endpoint, [f"status.{provider}", f"bbo.{provider}"])
    print("ready", flush=True)
    pids = [int(pid) for pid in sys.stdin.readline().split()]
    print(json.dumps(watch(sub, final, pids)), flush=True)


if __name__ == "__main__":
    main()
