"""The peer of the book benchmark: cryptofeed's Binance L2_BOOK (its books are order_book's C
sorted dicts) reading our Binance simulator, as its users run it (uvloop, a FeedHandler), with
a callback that only counts. Runs with bench/.peer-venv's python and imports nothing of
tickmesh.

usage: python peer_cryptofeed_book.py PORT TRUTH_JSON DEADLINE
TRUTH_JSON is the recording's (bench/binance_depth.py): its "symbols" are subscribed, its
"last_ids" say when a book has its last update. The clock starts when cryptofeed subscribes
(its connection is open: the simulator's replay starts) and stops when every symbol's last
depthUpdate has been applied. Counted are the L2_BOOK callbacks with a delta: the depthUpdates
cryptofeed applied to a book one by one (one it folded into a snapshot would not be counted;
cryptofeed folds none: it fetches a symbol's snapshot when the symbol's first depthUpdate
comes and reads nothing more until it has it, so every later one is a delta). Prints one JSON
line {"events" (deltas applied), "seconds", "cpu_seconds", "books": {symbol: [bids, asks]}}
(the books as [price, size] floats, best first) and exits; dies (SIGALRM) after DEADLINE
seconds.

Pointing cryptofeed 2.4.1 at a local server takes two workarounds: its WSAsyncConn accepts
only wss:// addresses (rebound here to a subclass without that check), and FeedHandler.run()
needs an event loop set under uvloop's policy.
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
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import Binance


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


def local_binance(port: int, on_subscribe) -> type[Binance]:
    class LocalBinance(Binance):
        websocket_endpoints = [WebsocketEndpoint(f"ws://127.0.0.1:{port}")]
        rest_endpoints = [RestEndpoint(f"http://127.0.0.1:{port}", routes=Routes(
            "/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"))]

        async def subscribe(self, conn):
            on_subscribe()
            await super().subscribe(conn)

    return LocalBinance


class BookCounter:
    def __init__(self, last_ids: dict[str, int]) -> None:
        self.last_ids = last_ids
        self.pending = set(last_ids)  # symbols whose last depthUpdate is still to be applied
        self.events = 0
        self.start = (0.0, 0.0)  # (wall, cpu) when subscribed
        self.books = {}

    def subscribed(self) -> None:
        self.start = (time.perf_counter(), cpu_seconds())

    async def on_book(self, book, _receipt_ts: float) -> None:
        if book.delta is None:  # the snapshot
            self.books[book.symbol] = book
            return
        self.events += 1
        if book.sequence_number == self.last_ids[book.symbol]:
            self.pending.discard(book.symbol)
            if not self.pending:
                self.report()

    def report(self) -> None:
        wall, cpu = self.start
        seconds, cpu_used = time.perf_counter() - wall, cpu_seconds() - cpu
        books = {symbol: [[(float(p), float(q)) for p, q in map(side.index, range(len(side)))]
                          for side in (book.book.bids, book.book.asks)]
                 for symbol, book in self.books.items()}
        print(json.dumps({"events": self.events, "seconds": seconds, "cpu_seconds": cpu_used,
                          "books": books}), flush=True)
        os._exit(0)


def main() -> None:
    port, truth_path, deadline = sys.argv[1:4]
    signal.alarm(int(deadline))
    with open(truth_path) as file:
        truth = json.load(file)
    counter = BookCounter(truth["last_ids"])
    cryptofeed.feed.WSAsyncConn = PlainWSAsyncConn
    handler = FeedHandler(config={"uvloop": True, "log": {"disabled": True}})
    asyncio.set_event_loop(asyncio.new_event_loop())  # uvloop's, from the policy just set
    feed = local_binance(int(port), counter.subscribed)(
        symbols=truth["symbols"], channels=[L2_BOOK], callbacks={L2_BOOK: counter.on_book})
    handler.add_feed(feed)
    handler.run()
    sys.exit(f"the feed ended after {counter.events} book updates, {len(counter.pending)} "
             "books short of their last")


if __name__ == "__main__":
    main()
