"""The Interactive Brokers handler: a supervised child (`python -m handlers.ib.handler`) that
streams trades, quotes and L2 depth from TWS or IB Gateway onto the bus.

ib_async owns the socket and the TWS API. For each connection the handler connects with its
client id, looks up every symbol's contract (reqContractDetails), and asks per symbol for
tick-by-tick AllLast (trades), tick-by-tick BidAsk (quotes) and market depth. IB's depth is
position-indexed; handlers.ib.depth turns it into price levels: a BookSnapshot with the first
depth batch of every (re)subscription, BookDelta events after it.

Every state change is a Status event: connecting, connected, subscribed, disconnected, error.
IB's error codes surface as they are: 326 (client id in use) is an error status, then the
connection ends and the handler backs off; 200 (no security definition) and any other error
tied to a request is an error status for that symbol while the others keep flowing; 1100
(TWS lost IB) is "disconnected", 1101/1102 (restored) "subscribed" again, after re-requesting
everything when the data was lost (1101); 317 resets that symbol's book. 2100-2199 are
informational. When the connection drops (a TWS restart, IB's daily one included), the handler
reconnects after a jittered, capped exponential backoff and requests everything again.

A TWS that stops answering (frozen, while the kernel keeps its socket up) is found by a
keepalive: every `keepalive` seconds the handler asks TWS the time (reqCurrentTime, which TWS
answers itself, IB outage or not), and no answer within `keepalive_timeout` seconds makes the
connection stale: it ends, and the handler reconnects as after a drop. Connecting to a frozen
TWS fails after `timeout`.

Settings (`IbSettings`): host, port (7497 TWS paper, 7496 TWS live, 4002/4001 IB Gateway),
client_id, symbols, depth_rows (0: no depth), smart_depth (aggregate depth over exchanges),
exchange, currency, backoff_min, backoff_max, timeout (seconds for each step of connecting and
for contract lookups), keepalive (seconds; 0: none), keepalive_timeout.
Counters: connects, reconnects, errors, stale, trades, quotes, book_snapshots, book_deltas,
depth_errors, malformed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

from ib_async import IB, Contract, Stock, Ticker
from ib_async.ib import StartupFetchNONE
from ib_async.objects import MktDepthData, TickByTickAllLast, TickByTickBidAsk

from bus import process
from bus.events import BookDelta, BookSnapshot, Quote, Trade
from handlers.common import child
from handlers.common.backoff import BackoffSettings
from handlers.common.lifecycle import Lifecycle
from handlers.common.settings import CommaStrings, require
from handlers.ib.depth import DepthBook, DepthError

PROVIDER = "ib"
INFORMATIONAL = range(2100, 2200)
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
DEPTH_RESET = 317


@dataclass(frozen=True, kw_only=True)
class IbSettings(BackoffSettings):
    """The handler's settings table."""

    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    symbols: CommaStrings
    depth_rows: int = 5
    smart_depth: bool = True
    exchange: str = "SMART"
    currency: str = "USD"
    timeout: float = 10.0
    keepalive: float = 10.0
    keepalive_timeout: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols) and not any("|" in symbol for symbol in self.symbols),
                "symbols", "symbols (without '|')", self.symbols)
        require(self.depth_rows >= 0, "depth_rows", "an integer >= 0", self.depth_rows)
        require(self.timeout > 0, "timeout", "a number > 0", self.timeout)
        require(self.keepalive >= 0, "keepalive", "a number >= 0", self.keepalive)
        require(self.keepalive_timeout > 0, "keepalive_timeout", "a number > 0",
                self.keepalive_timeout)


# --- normalization ----------------------------------------------------------------------------

def _ns(tick_time: Any) -> int:
    return int(tick_time.timestamp() * 1e9)


def trade(symbol: str, tick: TickByTickAllLast, ts_recv: int) -> Trade:
    """ts_event is when ib_async read the tick: it keeps no other time (TWS's is in seconds)."""
    return Trade(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 price=tick.price, size=tick.size, exchange=tick.exchange,
                 conditions=tick.specialConditions.split())


def quote(symbol: str, tick: TickByTickBidAsk, ts_recv: int) -> Quote:
    return Quote(provider=PROVIDER, symbol=symbol, ts_event=_ns(tick.time), ts_recv=ts_recv,
                 bid_price=tick.bidPrice, bid_size=tick.bidSize, ask_price=tick.askPrice,
                 ask_size=tick.askSize)


# --- the handler --------------------------------------------------------------------------------

class IbFeed:
    """One TWS connection after another, until cancelled."""

    def __init__(self, ctx: process.ProcessContext, settings: IbSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.log = process.log().bind(provider=PROVIDER, port=settings.port,
                                      client_id=settings.client_id)
        self.lifecycle = Lifecycle(ctx, PROVIDER, settings.backoff(), self.log)
        # this connection's: the client, the contracts found (by symbol), depth resyncs under way
        self.ib: IB | None = None
        self.contracts: dict[str, Contract] = {}
        self.resyncs: set[asyncio.Task] = set()
        self.books: dict[str, DepthBook] = {}
        self.snapshot_due: set[str] = set()

    async def run(self) -> None:
        await self.lifecycle.run(self._connection, f"{self.settings.host}:{self.settings.port}")

    async def _connection(self) -> str:
        """One connection's life: connect, subscribe, stream; returns why it ended."""
        ib = self.ib = IB()
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_api_error(message: str) -> None:  # the socket closed, or connecting failed
            if not ended.done():
                ended.set_result(message)

        ib.client.apiError += on_api_error
        ib.pendingTickersEvent += self._on_tickers
        # ib_async reports an error as it decodes it, but tickers only at the end of each read:
        # handle the error after the data TWS sent before it has been published.
        ib.errorEvent += lambda *error: asyncio.get_running_loop().call_soon(self._on_error, *error)
        work = asyncio.ensure_future(self._session(ib))
        try:
            done, _ = await asyncio.wait({work, ended}, return_when=asyncio.FIRST_COMPLETED)
            return work.result() if work in done else ended.result()
        except (OSError, TimeoutError, ConnectionError) as exc:
            return ended.result() if ended.done() else repr(exc)
        finally:
            for task in (work, *self.resyncs):
                task.cancel()
            ib.disconnect()
            self.contracts.clear()

    async def _session(self, ib: IB) -> str:
        """Connect and subscribe, then check that TWS keeps answering; returns why it stopped."""
        await self._start(ib)
        return await self._keepalive(ib)

    async def _start(self, ib: IB) -> None:
        s = self.settings
        # raiseSyncErrors: a TWS that does not answer the startup requests fails the connect
        await ib.connectAsync(s.host, s.port, s.client_id, timeout=s.timeout,
                              raiseSyncErrors=True, fetchFields=StartupFetchNONE)
        self.lifecycle.status("connected", message=f"server version {ib.client.serverVersion()}")
        wanted = [Stock(symbol, s.exchange, s.currency) for symbol in s.symbols]
        found = await asyncio.wait_for(ib.qualifyContractsAsync(*wanted), s.timeout)
        for contract in found:
            if isinstance(contract, Contract):
                self.contracts[contract.symbol] = contract
        self._request(ib, self.contracts.values())
        self.lifecycle.status("subscribed", message=f"{len(self.contracts)} of {len(s.symbols)} "
                                                    f"symbols: {', '.join(self.contracts)}")

    def _request(self, ib: IB, contracts: Iterable[Contract]) -> None:
        for contract in contracts:
            ib.reqTickByTickData(contract, "AllLast")
            ib.reqTickByTickData(contract, "BidAsk")
            if self.settings.depth_rows:
                self._reset_book(contract.symbol)
                ib.reqMktDepth(contract, self.settings.depth_rows, self.settings.smart_depth)

    async def _keepalive(self, ib: IB) -> str:
        """Ask TWS the time every `keepalive` seconds; returns why the connection is stale once
        an answer is late (with keepalive 0, never). One request at a time: ib_async keeps a
        single future for every reqCurrentTime, so a second one would take the first's place."""
        s = self.settings
        if not s.keepalive:
            await asyncio.Future()  # forever: the connection ends some other way
        while True:
            await asyncio.sleep(s.keepalive)
            try:
                await asyncio.wait_for(ib.reqCurrentTimeAsync(), s.keepalive_timeout)
            except TimeoutError:
                self.ctx.counters["stale"] += 1
                return f"stale: no answer to reqCurrentTime within {s.keepalive_timeout:g} s"

    def _reset_book(self, symbol: str) -> None:
        self.books.setdefault(symbol, DepthBook()).clear()
        self.snapshot_due.add(symbol)

    # --- data -------------------------------------------------------------------------------

    def _on_tickers(self, tickers: set[Ticker]) -> None:
        ts_recv = time.time_ns()
        publish, counters = self.ctx.publisher.publish, self.ctx.counters
        for ticker in tickers:
            symbol = ticker.contract.symbol
            for tick in ticker.tickByTicks:
                if isinstance(tick, TickByTickAllLast):
                    publish(trade(symbol, tick, ts_recv))
                    counters["trades"] += 1
                elif isinstance(tick, TickByTickBidAsk):
                    publish(quote(symbol, tick, ts_recv))
                    counters["quotes"] += 1
            if ticker.domTicks and symbol in self.books:
                self._on_depth(symbol, ticker.domTicks, ts_recv)

    def _on_depth(self, symbol: str, ticks: list[MktDepthData], ts_recv: int) -> None:
        book = self.books[symbol]
        try:
            for tick in ticks:
                book.apply(tick.side, tick.position, tick.operation, tick.price, tick.size)
        except DepthError as exc:
            self._out_of_step(symbol, str(exc))
            return
        if symbol in self.snapshot_due:
            self.snapshot_due.discard(symbol)
            self._publish_book(BookSnapshot, symbol, book.snapshot(), ts_recv)
        else:
            levels = book.delta()
            if levels[0] or levels[1]:
                self._publish_book(BookDelta, symbol, levels, ts_recv)

    def _publish_book(self, kind: type[BookSnapshot | BookDelta], symbol: str,
                      levels: tuple[list, list], ts_recv: int) -> None:
        bids, asks = levels
        self.ctx.publisher.publish(kind(provider=PROVIDER, symbol=symbol, ts_event=ts_recv,
                                        ts_recv=ts_recv, bids=bids, asks=asks))
        self.ctx.counters["book_snapshots" if kind is BookSnapshot else "book_deltas"] += 1

    def _out_of_step(self, symbol: str, problem: str) -> None:
        """The depth stream does not fit the book: count it, and resubscribe that symbol."""
        self.ctx.counters["depth_errors"] += 1
        self.log.warning("depth out of step with the book: resubscribing", symbol=symbol,
                         problem=problem)
        del self.books[symbol]  # its depth is ignored until the new subscription
        task = asyncio.ensure_future(self._resync_depth(self.ib, self.contracts[symbol]))
        self.resyncs.add(task)
        task.add_done_callback(self.resyncs.discard)

    async def _resync_depth(self, ib: IB, contract: Contract) -> None:
        """Cancel the depth subscription, wait until TWS has answered a request sent after
        the cancel (so nothing of the old subscription is still on its way), subscribe again.
        The request is a contract lookup: ib_async keys it by its own reqId."""
        ib.cancelMktDepth(contract, self.settings.smart_depth)
        try:
            await ib.reqContractDetailsAsync(contract)
        except ConnectionError:
            return  # the next connection subscribes afresh
        self._reset_book(contract.symbol)
        ib.reqMktDepth(contract, self.settings.depth_rows, self.settings.smart_depth)

    # --- IB's error codes -------------------------------------------------------------------

    def _on_error(self, req_id: int, code: int, text: str, contract: Contract | None) -> None:
        symbol = contract.symbol if contract is not None else ""
        if code in INFORMATIONAL:
            self.log.info("TWS notice", code=code, message=text)
        elif code == CONNECTIVITY_LOST:
            self.lifecycle.status("disconnected", code=code, message=text)
        elif code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            if code == RESTORED_DATA_LOST and self.ib is not None:
                self._request(self.ib, self.contracts.values())
            self.lifecycle.status("subscribed", code=code, message=text)
        elif code == DEPTH_RESET and symbol in self.books:
            self._reset_book(symbol)
            self.log.info("TWS reset the depth book", symbol=symbol, message=text)
        else:
            self.lifecycle.status("error", code=code, message=text, symbol=symbol)


class _LibraryLog(logging.Handler):
    """ib_async logs through the standard library: its warnings go to our structured log, and
    a message it could not decode counts as malformed input. Its wrapper's and client's lines
    stay out: every TWS error and every connection failure is a Status and a log line of ours."""

    def __init__(self, counters: Counter) -> None:
        super().__init__(logging.WARNING)
        self.counters = counters

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in ("ib_async.wrapper", "ib_async.client"):
            return
        if record.name == "ib_async.Decoder":
            self.counters["malformed"] += 1
        process.log().warning(record.getMessage(), logger=record.name, provider=PROVIDER)


async def _main(ctx: process.ProcessContext, settings: IbSettings) -> None:
    library = logging.getLogger("ib_async")
    library.addHandler(_LibraryLog(ctx.counters))
    library.propagate = False
    await IbFeed(ctx, settings).run()


def main() -> None:
    child.run(_main, IbSettings)


if __name__ == "__main__":
    main()
