"""A bus subscriber with no tickmesh code at all, only pyzmq and msgpack: the wire format
(docs/events.md) stands on its own. Prints one line per event and reports lost messages.

    python examples/plain_subscriber.py ENDPOINT [PREFIX...] [--count N]
    python examples/plain_subscriber.py ipc:///tmp/tickmesh-$(id -u)/subscribe 'trade.alpaca.AAPL|'

A PREFIX is a raw ZeroMQ topic prefix: 'trade.' every trade, 'trade.alpaca.' every Alpaca
trade, 'trade.alpaca.AAPL|' exactly AAPL's (the '|' ends the symbol); none: everything.
"""

from __future__ import annotations

import argparse
import sys

import msgpack
import zmq


def describe(event: dict) -> str:
    """One line: kind, provider, symbol, and the prices of a trade or a quote."""
    head = f"{event['k']} {event['p']} {event['s']}"
    if event["k"] == "trade":
        return f"{head} {event['px']} x {event['sz']}"
    if event["k"] == "quote":
        return f"{head} {event['bp']} / {event['ap']}"
    return head


class GapCheck:
    """Per topic: the same epoch `e` and a sequence `q` that skips means messages were lost."""

    def __init__(self) -> None:
        self.last: dict[bytes, tuple[int, int]] = {}

    def missed(self, topic: bytes, event: dict) -> int:
        previous = self.last.get(topic)
        self.last[topic] = (event["e"], event["q"])
        if previous is None or previous[0] != event["e"]:
            return 0  # a first message, or the publisher restarted
        return max(0, event["q"] - previous[1] - 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", help="the bus's subscribe endpoint ([bus].subscribe)")
    parser.add_argument("prefixes", nargs="*", default=[""], metavar="PREFIX")
    parser.add_argument("--count", type=int, default=0, help="stop after N events")
    args = parser.parse_args(argv)
    sock = zmq.Context.instance().socket(zmq.SUB)
    for prefix in args.prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(args.endpoint)
    gaps = GapCheck()
    printed = 0
    while args.count == 0 or printed < args.count:
        topic, payload = sock.recv_multipart()
        event = msgpack.unpackb(payload)
        if missed := gaps.missed(topic, event):
            print(f"lost {missed} on {topic.decode()}", file=sys.stderr, flush=True)
        print(describe(event), flush=True)
        printed += 1
    sock.close(linger=0)


if __name__ == "__main__":
    main()
