"""The peer of the Kraken book benchmark: cryptofeed's Kraken L2_BOOK at depth 1000 with its
checksum validation on (`checksum_validation=True`: every update's CRC32 `c` compared with its
order_book C book's), reading our Kraken simulator, as its users run it (uvloop, a
FeedHandler), with a callback that only counts. Runs with bench/.peer-venv's python and imports
nothing of tickmesh.

usage: python peer_cryptofeed_kraken.py PORT SYMBOLS EXPECTED DEADLINE
SYMBOLS is a comma-separated list (AAA-USD,...; Kraken's AAA/USD). The clock starts when
cryptofeed subscribes (its connection is open: the simulator's replay starts) and stops at the
EXPECTED-th book update (an L2_BOOK callback with a delta: one update applied to a book and, if
it carried `c`, checked). Prints one JSON line {"events", "seconds", "cpu_seconds", "verified"
(updates whose `c` cryptofeed compared), "snapshots", "books": {symbol: [bids, asks]}} (the
books as [price, size] floats, best first) and exits; dies (SIGALRM) after DEADLINE seconds.
A checksum mismatch raises BadChecksum in cryptofeed, which reconnects: a new snapshot, so
"snapshots" more than the pairs says one happened.

Pointing cryptofeed 2.4.1 at a local server takes three workarounds, none in what is measured:
- its WSAsyncConn accepts only wss:// addresses (rebound here to a subclass without that
  check, as bench/peer_cryptofeed_book.py does for Binance);
- at construction a feed reads the venue's symbol list over REST (Kraken: GET
  https://api.kraken.com/0/public/AssetPairs), which our simulator does not serve: the mapping
  is made before the feed from an AssetPairs-shaped answer for our pairs, by cryptofeed's own
  parser (Kraken._parse_symbol_data), and set in its cache (Symbols), so no request is made;
- FeedHandler.run() needs an event loop set under uvloop's policy.
One connection for all the pairs, as our handler has: cryptofeed's Kraken endpoint opens one
per 20 pairs by default (limit=20), and the simulator replays the whole recording to each
connection, so several would multiply the simulator's work on the same 2 cores; what
cryptofeed does per update is the same either way.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import time

import cryptofeed.connection as connection
import cryptofeed.feed
from cryptofeed import FeedHandler
from cryptofeed.connection import WebsocketEndpoint
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import Kraken
from cryptofeed.symbols import Symbols

DEPTH = 1000


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PlainWSAsyncConn(connection.WSAsyncConn):
    """cryptofeed's WSAsyncConn.__init__ without its `startswith("wss://")` check."""

    def __init__(self, address, conn_id, authentication=None, subscription=None, **kwargs):
        self.address = address
        connection.AsyncConnection.__init__(self, f"{conn_id}.ws.{self.conn_count}",
                                            authentication=authentication,
                                            subscription=subscription)
        self.ws_kwargs = kwargs


def known_pairs(symbols: list[str]) -> None:
    """cryptofeed's Kraken symbol mapping for our pairs, as it would read it from AssetPairs."""
    result = {}
    for symbol in symbols:
        base, quote = symbol.split("-")
        result[f"{base}{quote}"] = {"altname": f"{base}{quote}", "wsname": f"{base}/{quote}",
                                    "base": base, "quote": quote}
    Symbols.set(Kraken.id, *Kraken._parse_symbol_data({"error": [], "result": result}))


def local_kraken(port: int, on_subscribe) -> type[Kraken]:
    class LocalKraken(Kraken):
        websocket_endpoints = [WebsocketEndpoint(f"ws://127.0.0.1:{port}")]

        async def subscribe(self, conn):
            on_subscribe()
            await super().subscribe(conn)

    return LocalKraken


class BookCounter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.events = 0
        self.verified = 0
        self.snapshots = 0
        self.start = (0.0, 0.0)  # (wall, cpu) when subscribed
        self.books = {}

    def subscribed(self) -> None:
        if not self.start[0]:
            self.start = (time.perf_counter(), cpu_seconds())

    async def on_book(self, book, _receipt_ts: float) -> None:
        if book.delta is None:  # a snapshot
            self.snapshots += 1
            self.books[book.symbol] = book
            return
        self.events += 1
        if book.checksum is not None:  # its `c` was there, so compared (validation on)
            self.verified += 1
        if self.events == self.expected:
            self.report()

    def report(self) -> None:
        wall, cpu = self.start
        seconds, cpu_used = time.perf_counter() - wall, cpu_seconds() - cpu
        books = {symbol: [[(float(p), float(q)) for p, q in map(side.index, range(len(side)))]
                          for side in (book.book.bids, book.book.asks)]
                 for symbol, book in self.books.items()}
        print(json.dumps({"events": self.events, "seconds": seconds, "cpu_seconds": cpu_used,
                          "verified": self.verified, "snapshots": self.snapshots,
                          "books": books}), flush=True)
        os._exit(0)


def main() -> None:
    port, symbols, expected, deadline = sys.argv[1:5]
    signal.alarm(int(deadline))
    counter = BookCounter(int(expected))
    cryptofeed.feed.WSAsyncConn = PlainWSAsyncConn
    known_pairs(symbols.split(","))
    handler = FeedHandler(config={"uvloop": True, "log": {"disabled": True}})
    asyncio.set_event_loop(asyncio.new_event_loop())  # uvloop's, from the policy just set
    feed = local_kraken(int(port), counter.subscribed)(
        symbols=symbols.split(","), channels=[L2_BOOK], callbacks={L2_BOOK: counter.on_book},
        max_depth=DEPTH, checksum_validation=True)
    handler.add_feed(feed)
    handler.run()
    sys.exit(f"the feed ended after {counter.events} of {expected} book updates")


if __name__ == "__main__":
    main()
