"""A publisher process for bus tests: warms up until told to go on stdin, then publishes
`count` trades on `symbol` at about `rate` per second (prices 0, 1, 2 ...), prints "done <n>",
then marks the end with trades of price -1 on the same symbol until told to quit: a subscriber
can only see that it lost the last messages of a topic when a later one arrives.

usage: python -m tests.bus_publisher ENDPOINT[,ENDPOINT_B] SYMBOL COUNT RATE
(two endpoints: every message on both bus lines)
"""

from __future__ import annotations

import select
import sys
import time

from tickmesh.bus import Publisher
from tests.publishing import trade


def main() -> None:
    endpoints, symbol, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    publisher = Publisher(tuple(endpoints.split(",")))
    while not select.select([sys.stdin], [], [], 0.01)[0]:
        publisher.publish(trade("WARM", 0.0, provider="test"))
    sys.stdin.readline()
    batch = 100
    interval = batch / rate
    start = time.monotonic()
    for i in range(count):
        publisher.publish(trade(symbol, float(i), provider="test"))
        if i % batch == batch - 1:
            delay = start + (i + 1) / batch * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    print(f"done {count}", flush=True)
    while not select.select([sys.stdin], [], [], 0.01)[0]:
        publisher.publish(trade(symbol, -1.0, provider="test"))
    publisher.close()


if __name__ == "__main__":
    main()
