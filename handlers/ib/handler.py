"""The Interactive Brokers handler: a supervised child (`python -m tickmesh.handlers.ib.handler`) that
streams trades, quotes and L2 depth from TWS or IB Gateway onto the bus.

ib_async owns the socket and the TWS API; handlers.ib.protocol (pure) turns what it reports
into bus events, state changes and resubscribes, and this module does the I/O. For each
connection the handler connects with its client id, looks up every symbol's contract
(reqContractDetails), and asks per symbol for tick-by-tick AllLast (trades), tick-by-tick
BidAsk (quotes) and market depth.

Every state change is a Status event: connecting, connected, subscribed, disconnected, error
(IB's codes are handlers.ib.protocol's). 326 (client id in use) ends the connection and the
handler backs off; 200 (no security definition) and other errors tied to a request are an
error status for that symbol while the others keep flowing. A `Resubscribe(symbol)` (depth
out of step, or 1101: data lost) cancels that symbol's streams, waits until TWS has answered a
request sent after the cancel (so nothing of the old subscription is still on its way), and
requests them again. When the connection drops (a TWS restart, IB's daily one included), the
handler reconnects after a jittered, capped exponential backoff and requests everything again.

A TWS that stops answering (frozen, while the kernel keeps its socket up) is found by a
keepalive: every `keepalive` seconds the handler asks TWS the time (reqCurrentTime, which TWS
answers itself, IB outage or not), and no answer within `keepalive_timeout` seconds makes the
connection stale: it ends, and the handler reconnects as after a drop. Connecting to a frozen
TWS fails after `timeout`.

Settings (`IbSettings`): host, port (7497 TWS paper, 7496 TWS live, 4002/4001 IB Gateway),
client_id, symbols, depth_rows (0: no depth), smart_depth (aggregate depth over exchanges),
exchange, currency, backoff_min, backoff_max, stable_after, timeout (seconds for each step of
connecting and for contract lookups), keepalive (seconds; 0: none), keepalive_timeout.
Metrics: connects, reconnects, provider_errors, stale_connections, resubscribes, bad_input
(depth_out_of_step, malformed, oversized).

A message length over TWS's own limit (MAX_MESSAGE_SIZE) ends the connection at once, before
ib_async buffers what it promises (counted as bad_input oversized, and the "disconnected"
Status says why); messages ib_async cannot decode are logged sparingly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass


import structlog
from ib_async import IB, Contract, Stock, Ticker
from ib_async.ib import StartupFetchNONE

from tickmesh.bus.events import Control
from tickmesh.handlers.common.backoff import BackoffSettings
from tickmesh.handlers.common.control import listen_for_control
from tickmesh.handlers.common.lifecycle import Lifecycle
from tickmesh.handlers.common.protocol import RESYNC, Output, Resubscribe
from tickmesh.handlers.ib.protocol import PROVIDER, IbProtocol
from tickmesh.runtime import process
from tickmesh.runtime.logs import log
from tickmesh.runtime.metrics import EVENT_LATENCY
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.secrets import redact
from tickmesh.runtime.settings import CommaStrings, require

MAX_MESSAGE_SIZE = 0xFFFFFF
"""The longest TWS API message (TWS's own limit): a longer length drops the connection."""
MAX_LOGGED = 300
"""Characters of an ib_async warning that are logged."""


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


# --- the handler --------------------------------------------------------------------------------

class IbFeed:
    """One TWS connection after another, until cancelled."""

    def __init__(self, ctx: process.ProcessContext, settings: IbSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.log = log().bind(port=settings.port, client_id=settings.client_id)
        self.lifecycle = Lifecycle(ctx, PROVIDER, settings.backoff(), self.log,
                                   settings.stable_after)
        self.protocol = IbProtocol(ctx.counts)
        # this connection's: the client, the contracts found (by symbol), resyncs under way
        self.ib: IB | None = None
        self.contracts: dict[str, Contract] = {}
        self.resyncs: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        structlog.contextvars.bind_contextvars(provider=PROVIDER)  # in every line from here on
        controls = asyncio.create_task(listen_for_control(self.ctx, PROVIDER, self._control))
        try:
            await self.lifecycle.run(self._connection,
                                     f"{self.settings.host}:{self.settings.port}")
        finally:
            controls.cancel()

    def _control(self, request: Control) -> None:
        """A control request from the bus: "resync" resubscribes that symbol."""
        if request.action == RESYNC and request.symbol:
            self._resubscribe(Resubscribe(request.symbol, f"asked by {request.sender}"))
        else:
            self.ctx.counts["bad_input", "control"] += 1
            self.log.warning("unknown control request", action=request.action,
                             symbol=request.symbol, sender=request.sender)

    async def _connection(self) -> str:
        """One connection's life: connect, subscribe, stream; returns why it ended."""
        ib = self.ib = IB()
        self.protocol.start()
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_api_error(message: str) -> None:  # the socket closed, or connecting failed
            if not ended.done():
                ended.set_result(message)

        def on_data(data: bytes) -> None:  # runs after ib_async has buffered `data`
            length = guard.oversized(data)
            if length:
                self.ctx.counts["bad_input", "oversized"] += 1
                on_api_error(f"a TWS message of {length} bytes, over the limit of "
                             f"{MAX_MESSAGE_SIZE}: connection dropped")
                ib.client.conn.disconnect()  # reads no more

        guard = _SizeGuard()
        ib.client.conn.hasData += on_data
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
            for task in (work, *self.resyncs.values()):
                task.cancel()
            self.resyncs.clear()
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
                self._request(ib, contract)
        self.lifecycle.status("subscribed", message=f"{len(self.contracts)} of {len(s.symbols)} "
                                                    f"symbols: {', '.join(self.contracts)}")

    def _request(self, ib: IB, contract: Contract) -> None:
        ib.reqTickByTickData(contract, "AllLast")
        ib.reqTickByTickData(contract, "BidAsk")
        depth = bool(self.settings.depth_rows)
        self.protocol.subscribed(contract.symbol, depth)
        if depth:
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
                self.ctx.counts["stale_connections"] += 1
                return f"stale: no answer to reqCurrentTime within {s.keepalive_timeout:g} s"

    # --- what ib_async reports, through the protocol ----------------------------------------

    def _on_tickers(self, tickers: set[Ticker]) -> None:
        self._apply(self.protocol.tickers(tickers, time.time_ns()))

    def _on_error(self, req_id: int, code: int, text: str, contract: Contract | None) -> None:
        symbol = contract.symbol if contract is not None else ""
        out = self.protocol.error(code, text, symbol)
        if out.problem:
            self.log.info("TWS notice", code=code, notice=out.problem,
                          **({"symbol": symbol} if symbol else {}))
        for change in out.changes:
            self.lifecycle.status(change.state, change.code, change.message, change.symbol)
        self._apply(out)

    def _apply(self, out: Output) -> None:
        """The events and the effects (changes and problems are the caller's)."""
        publish = self.ctx.publisher.publish
        if out.events:
            first = out.events[0]
            latency = (first.ts_recv - first.ts_event) * 1e-9
            self.ctx.metrics.histogram(EVENT_LATENCY).observe(latency)
        for event in out.events:
            publish(event)
        for effect in out.effects:
            if isinstance(effect, Resubscribe):
                self._resubscribe(effect)

    def _resubscribe(self, request: Resubscribe) -> None:
        contract = self.contracts.get(request.symbol)
        if self.ib is None or contract is None or request.symbol in self.resyncs:
            return
        self.lifecycle.status("resyncing", message=request.reason, symbol=request.symbol)
        self.ctx.counts["resubscribes"] += 1
        task = asyncio.ensure_future(self._resync(self.ib, contract))
        self.resyncs[request.symbol] = task
        task.add_done_callback(lambda _: self.resyncs.pop(request.symbol, None))

    async def _resync(self, ib: IB, contract: Contract) -> None:
        """Cancel the symbol's streams, wait until TWS has answered a request sent after the
        cancel (so nothing of the old subscription is still on its way), request them again.
        The request is a contract lookup: ib_async keys it by its own reqId."""
        ib.cancelTickByTickData(contract, "AllLast")
        ib.cancelTickByTickData(contract, "BidAsk")
        if self.settings.depth_rows:
            ib.cancelMktDepth(contract, self.settings.smart_depth)
        try:
            await ib.reqContractDetailsAsync(contract)
        except ConnectionError:
            return  # the next connection subscribes afresh
        self._request(ib, contract)


class _SizeGuard:
    """Follows the TWS API framing (each message: its length in 4 bytes, big-endian, then that
    many bytes) of what ib_async receives, to catch a length over MAX_MESSAGE_SIZE: ib_async
    itself would buffer whatever a length promises, up to 4 GB."""

    def __init__(self) -> None:
        self.header = b""  # of the next message, so far
        self.body_left = 0  # bytes of the current message still to come

    def oversized(self, data: bytes) -> int:
        """The first length over the limit that `data` completes, or 0."""
        view = memoryview(data)
        while view:
            if self.body_left:
                step = min(self.body_left, len(view))
                self.body_left -= step
                view = view[step:]
                continue
            need = 4 - len(self.header)
            self.header += view[:need]
            view = view[need:]
            if len(self.header) == 4:
                length = int.from_bytes(self.header, "big")
                self.header = b""
                if length > MAX_MESSAGE_SIZE:
                    return length
                self.body_left = length
        return 0


class _LibraryLog(logging.Handler):
    """ib_async logs through the standard library: a message it could not decode counts as
    malformed input, logged sparingly (runtime.badinput: a flood of them cannot flood the log),
    and its other warnings go to our structured log, each cut to MAX_LOGGED characters after
    masking secrets. Its wrapper's and client's lines stay out: every TWS error and every
    connection failure is a Status and a log line of ours."""

    def __init__(self, counters: Counter) -> None:
        super().__init__(logging.WARNING)
        self.counters = counters

    def emit(self, record: logging.LogRecord) -> None:
        if record.name in ("ib_async.wrapper", "ib_async.client"):
            return
        message = redact(record.getMessage())[:MAX_LOGGED]
        if record.name == "ib_async.Decoder":
            count_bad_input(self.counters, ("bad_input", "malformed"), log(),
                            "a TWS message ib_async could not decode", message=message,
                            provider=PROVIDER)
        else:
            log().warning(message, logger=record.name, provider=PROVIDER)


Settings = IbSettings


async def _main(ctx: process.ProcessContext[IbSettings]) -> None:
    library = logging.getLogger("ib_async")
    library.addHandler(_LibraryLog(ctx.counts))
    library.propagate = False
    await IbFeed(ctx, ctx.settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
