"""The peer: alpaca-py's StockDataStream reading our Alpaca simulator, as its users run it
(msgpack, parsed Trade models) with a callback that only counts. Runs with bench/.peer-venv's
python and imports nothing of tickmesh.

usage: python peer_alpaca_sdk.py PORT EXPECTED DEADLINE
Credentials come from APCA_API_KEY_ID / APCA_API_SECRET_KEY. From the first trade to the
EXPECTED-th, measures the wall time and this process's CPU time, prints them as one JSON line
{"events", "seconds", "cpu_seconds"} and exits. Dies (SIGALRM) after DEADLINE seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time

from alpaca.data.live import StockDataStream


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TradeCounter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.events = 0
        self.start = (0.0, 0.0)  # (wall, cpu) at the first trade

    async def on_trade(self, _trade: object) -> None:
        self.events += 1
        if self.events == 1:
            self.start = (time.perf_counter(), cpu_seconds())
        if self.events == self.expected:
            self.report()

    def report(self) -> None:
        wall, cpu = self.start
        print(json.dumps({"events": self.events, "seconds": time.perf_counter() - wall,
                          "cpu_seconds": cpu_seconds() - cpu}), flush=True)
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("expected", type=int)
    parser.add_argument("deadline", type=int)
    args = parser.parse_args()
    signal.alarm(args.deadline)
    counter = TradeCounter(args.expected)
    stream = StockDataStream(os.environ["APCA_API_KEY_ID"], os.environ["APCA_API_SECRET_KEY"],
                             url_override=f"ws://127.0.0.1:{args.port}/v2/iex")
    stream.subscribe_trades(counter.on_trade, "*")
    stream.run()
    sys.exit("the stream ended before the expected trades came")


if __name__ == "__main__":
    main()
