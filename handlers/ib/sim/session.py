"""The fake TWS / IB Gateway, sans-I/O: client sessions, their subscriptions, and the markets.

A `Session` is one API connection: bytes in, messages out. It does the handshake, refuses a
client id already in use (error 326, then the connection closes), answers the requests
`IB().connect()` waits for with empty results, answers contract details for its stocks (error
200 for anything else), and streams market data, tick-by-tick data and market depth. `Tws`
owns the sessions and the markets: each `advance()` steps every market and hands each session
what its subscriptions see. The simulator module does the I/O.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, ClassVar, Iterator, Protocol

from tickmesh.handlers.ib.sim import wire
from tickmesh.handlers.ib.depth import ASK, BID, DELETE, INSERT, UPDATE
from tickmesh.handlers.ib.sim.market import DepthOp, Market, Step, Top
from tickmesh.handlers.ib.sim.wire import (
    Cancel, ContractDetailsRequest, DepthRequest, Handshake, MarketDataRequest, Query,
    StartApi, TickByTickRequest, WireError,
)

ACCOUNT = "DU1234567"
PRIMARY_EXCHANGE = "NASDAQ"
MARKET_MAKER = "NSDQ"
FIRST_CON_ID = 100_001
NEXT_ORDER_ID = 1  # nothing is ever ordered here

CLIENT_ID_IN_USE = (326, "Unable to connect as the client id is already in use. "
                         "Retry with a unique client id.")
NO_SECURITY = (200, "No security definition has been found for the request")
BAD_REQUEST = (321, "Error validating request")
CONNECTIVITY_LOST = (1100, "Connectivity between IB and Trader Workstation has been lost.")
CONNECTIVITY_RESTORED = (1102, "Connectivity between IB and Trader Workstation has been "
                               "restored - data maintained.")
FARMS_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
DATA_LOST = (1101, "Connectivity between IB and Trader Workstation has been restored - data "
                   "lost.")
DEPTH_RESET = (317, "Market depth data has been RESET. Please empty deep book contents before "
                    "applying any new entries.")
FARMS_BROKEN = (
    (2103, "Market data farm connection is broken:usfarm"),
    (2105, "HMDS data farm connection is broken:ushmds"),
)
ERRORS = dict([CLIENT_ID_IN_USE, NO_SECURITY, BAD_REQUEST, DEPTH_RESET, CONNECTIVITY_LOST,
               DATA_LOST, CONNECTIVITY_RESTORED, *FARMS_BROKEN, *FARMS_OK])
"""The errors a test may have TWS send (handlers.common.simcontrol's error action)."""
PER_REQUEST_ERRORS = frozenset({NO_SECURITY[0], DEPTH_RESET[0], BAD_REQUEST[0]})
CLOSING_ERRORS = frozenset({CLIENT_ID_IN_USE[0]})


# --- what one subscription sends -------------------------------------------------------------

class Stream(Protocol):
    symbol: str
    request: ClassVar[str]

    def initial(self, market: Market, now: int) -> list[bytes]: ...

    def update(self, market: Market, step: Step, now: int) -> list[bytes]: ...


@dataclass
class MarketDataStream:
    """reqMktData: tickPrice/tickSize for bid, ask, last, volume."""

    req_id: int
    symbol: str
    request: ClassVar[str] = "mktData"

    def initial(self, market: Market, now: int) -> list[bytes]:
        top = market.top
        return [
            wire.market_data_type(self.req_id),
            wire.tick_req_params(self.req_id, 0.01, "9c0001"),
            wire.tick_price(self.req_id, 1, top.bid, top.bid_size),
            wire.tick_price(self.req_id, 2, top.ask, top.ask_size),
            wire.tick_size(self.req_id, 8, market.volume),
        ]

    def update(self, market: Market, step: Step, now: int) -> list[bytes]:
        before, after = step.before, step.after
        out = self._side(1, 0, before.bid, before.bid_size, after.bid, after.bid_size)
        out += self._side(2, 3, before.ask, before.ask_size, after.ask, after.ask_size)
        if step.trade:
            out += [
                wire.tick_price(self.req_id, 4, step.trade.price, step.trade.size),
                wire.tick_size(self.req_id, 5, step.trade.size),
                wire.tick_size(self.req_id, 8, market.volume),
            ]
        return out

    def _side(self, price_type: int, size_type: int, old_price: float, old_size: float,
              price: float, size: float) -> list[bytes]:
        if price != old_price:
            return [wire.tick_price(self.req_id, price_type, price, size)]
        if size != old_size:
            return [wire.tick_size(self.req_id, size_type, size)]
        return []


@dataclass
class TickByTickStream:
    """reqTickByTickData: every trade (Last, AllLast), every top change (BidAsk, MidPoint)."""

    req_id: int
    symbol: str
    tick_type: int
    request: ClassVar[str] = "tickByTick"

    def initial(self, market: Market, now: int) -> list[bytes]:
        return self._top(market.top, now)

    def update(self, market: Market, step: Step, now: int) -> list[bytes]:
        if self.tick_type in (1, 2):
            trade = step.trade
            return [wire.tick_by_tick_last(self.req_id, self.tick_type, now, trade.price,
                                           trade.size, trade.exchange)] if trade else []
        changed = (step.after != step.before if self.tick_type == 3
                   else step.after.midpoint != step.before.midpoint)
        return self._top(step.after, now) if changed else []

    def _top(self, top: Top, now: int) -> list[bytes]:
        if self.tick_type == 3:
            return [wire.tick_by_tick_bid_ask(self.req_id, now, top.bid, top.ask, top.bid_size,
                                              top.ask_size)]
        if self.tick_type == 4:
            return [wire.tick_by_tick_midpoint(self.req_id, now, top.midpoint)]
        return []


@dataclass
class DepthStream:
    """reqMktDepth: the top `rows` rows of each side, as position operations."""

    req_id: int
    symbol: str
    rows: int
    smart: bool
    request: ClassVar[str] = "mktDepth"

    def initial(self, market: Market, now: int) -> list[bytes]:
        return [
            self._message(position, INSERT, side, price, size)
            for side in (ASK, BID)
            for position, (price, size) in enumerate(market.sides[side].rows[:self.rows])
        ]

    def update(self, market: Market, step: Step, now: int) -> list[bytes]:
        return [
            self._message(position, operation, op.side, price, size)
            for op in step.ops
            for position, operation, price, size in self._visible(op)
        ]

    def glitch(self) -> bytes:
        """An update one row past the end of what this subscriber holds, as a faulty TWS
        would send it."""
        return self._message(self.rows, UPDATE, BID, 0.01, 1.0)

    def _visible(self, op: DepthOp) -> Iterator[tuple[int, int, float, float]]:
        """The operation as seen through the top `rows` rows: an insert pushes the last
        visible row out of view, a delete pulls the next one in."""
        if op.position >= self.rows:
            return
        yield op.position, op.operation, op.price, op.size
        if op.operation == INSERT and len(op.rows_after) > self.rows:
            yield self.rows, DELETE, op.rows_after[self.rows][0], 0.0
        elif op.operation == DELETE and len(op.rows_after) >= self.rows:
            price, size = op.rows_after[self.rows - 1]
            yield self.rows - 1, INSERT, price, size

    def _message(self, position: int, operation: int, side: int, price: float,
                 size: float) -> bytes:
        if self.smart:
            return wire.depth_l2(self.req_id, position, MARKET_MAKER, operation, side, price, size)
        return wire.depth(self.req_id, position, operation, side, price, size)


# --- one connection ---------------------------------------------------------------------------

class Session:
    """One API connection. `closed` turns true when TWS hangs up after its last replies."""

    def __init__(self, tws: "Tws") -> None:
        self.tws = tws
        self.client_id: int | None = None
        self.closed = False
        self.streams: dict[str, dict[int, Stream]] = defaultdict(dict)  # symbol -> reqId -> stream
        self._reader = wire.ServerReader()

    def receive(self, data: bytes) -> list[bytes]:
        """Replies to the requests completed by `data`. Raises WireError on bad bytes."""
        out: list[bytes] = []
        for request in self._reader.feed(data):
            if self.closed:
                break
            out += self._answer(request)
        return out

    def update(self, market: Market, step: Step, now: int) -> list[bytes]:
        return [message for stream in self.streams.get(market.symbol, {}).values()
                for message in stream.update(market, step, now)]

    def subscriptions(self) -> list[str]:
        """What it streams, as "request:SYMBOL" (request: mktData, tickByTick or mktDepth)."""
        return sorted(f"{stream.request}:{symbol}" for symbol, streams in self.streams.items()
                      for stream in streams.values())

    def error(self, code: int) -> list[bytes]:
        """TWS error `code` (of ERRORS): one per subscription if it concerns a request (317:
        each depth subscription), else one for the connection (request id -1)."""
        text = ERRORS[code]
        if code not in PER_REQUEST_ERRORS:
            return [wire.error(-1, code, text)]
        return [wire.error(req_id, code, text) for streams in self.streams.values()
                for req_id, stream in streams.items()
                if code != DEPTH_RESET[0] or isinstance(stream, DepthStream)]

    def _answer(self, request: wire.Request) -> list[bytes]:
        if isinstance(request, Handshake):
            return [self._hello(request)]
        if isinstance(request, StartApi):
            return self._start(request.client_id)
        if self.client_id is None:
            raise WireError(f"{type(request).__name__} before startApi")
        if isinstance(request, ContractDetailsRequest):
            return self._details(request)
        if isinstance(request, (MarketDataRequest, DepthRequest, TickByTickRequest)):
            return self._subscribe(request)
        if isinstance(request, Cancel):
            for streams in self.streams.values():
                streams.pop(request.req_id, None)
            return []
        if isinstance(request, Query):
            return self._query(request)
        return []  # Other: market data type, auto open orders... need no answer

    def _hello(self, handshake: Handshake) -> bytes:
        version = min(handshake.max_version, wire.SERVER_VERSION)
        if version < max(handshake.min_version, wire.MIN_SERVER_VERSION):
            raise WireError(f"no common version with client range "
                            f"{handshake.min_version}..{handshake.max_version}")
        stamp = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(self.tws.clock()))
        return wire.server_hello(version, stamp)

    def _start(self, client_id: int) -> list[bytes]:
        if self.client_id is not None:
            raise WireError("startApi sent twice")
        if client_id in self.tws.client_ids:
            self.closed = True
            return [wire.error(-1, *CLIENT_ID_IN_USE)]
        self.client_id = client_id
        self.tws.client_ids.add(client_id)
        return [wire.managed_accounts([ACCOUNT]), wire.next_valid_id(NEXT_ORDER_ID)] + [
            wire.error(-1, code, text) for code, text in FARMS_OK
        ]

    def _details(self, request: ContractDetailsRequest) -> list[bytes]:
        market = self.tws.lookup(request.contract)
        if market is None:
            return [wire.error(request.req_id, *NO_SECURITY)]
        exchange = request.contract.exchange or "SMART"
        con_id = self.tws.con_ids[market.symbol]
        return [wire.stock_details(request.req_id, con_id, market.symbol, exchange,
                                   PRIMARY_EXCHANGE),
                wire.contract_details_end(request.req_id)]

    def _subscribe(self, request: MarketDataRequest | DepthRequest | TickByTickRequest
                   ) -> list[bytes]:
        market = self.tws.lookup(request.contract)
        if market is None:
            return [wire.error(request.req_id, *NO_SECURITY)]
        stream: Stream
        if isinstance(request, DepthRequest):
            stream = DepthStream(request.req_id, market.symbol,
                                 max(1, min(request.rows, market.rows)), request.smart)
        elif isinstance(request, TickByTickRequest):
            tick_type = wire.TICK_BY_TICK_TYPES.get(request.tick_type)
            if tick_type is None:
                code, text = BAD_REQUEST
                return [wire.error(request.req_id, code,
                                   f"{text}: tick type {request.tick_type!r}")]
            stream = TickByTickStream(request.req_id, market.symbol, tick_type)
        else:
            stream = MarketDataStream(request.req_id, market.symbol)
        out = stream.initial(market, int(self.tws.clock()))
        if isinstance(request, MarketDataRequest) and request.snapshot:
            return out + [wire.tick_snapshot_end(request.req_id)]
        self.streams[market.symbol][request.req_id] = stream
        return out

    def _query(self, query: Query) -> list[bytes]:
        if query.msg_id == wire.Out.REQ_IDS:
            return [wire.next_valid_id(NEXT_ORDER_ID)]
        if query.msg_id == wire.Out.REQ_CURRENT_TIME:
            return [wire.current_time(int(self.tws.clock()))]
        end = wire.end_of(query, ACCOUNT)
        return [end] if end else []


# --- the whole gateway ------------------------------------------------------------------------

class Tws:
    def __init__(self, markets: list[Market], clock: Callable[[], float] = time.time) -> None:
        self.markets = {market.symbol: market for market in markets}
        self.con_ids = {market.symbol: FIRST_CON_ID + i for i, market in enumerate(markets)}
        self._by_con_id = {con_id: symbol for symbol, con_id in self.con_ids.items()}
        self.clock = clock
        self.sessions: list[Session] = []
        self.client_ids: set[int] = set()
        self.online = True

    def open(self) -> Session:
        session = Session(self)
        self.sessions.append(session)
        return session

    def close(self, session: Session) -> None:
        self.sessions.remove(session)
        self.client_ids.discard(session.client_id)  # type: ignore[arg-type]

    def lookup(self, contract: wire.Contract) -> Market | None:
        """The market a contract names: by conId if given, else a USD stock by symbol."""
        if contract.con_id:
            symbol = self._by_con_id.get(contract.con_id)
        elif contract.sec_type in ("STK", "") and contract.currency in ("USD", ""):
            symbol = contract.symbol
        else:
            symbol = None
        return self.markets.get(symbol) if symbol is not None else None

    def advance(self, steps: int) -> dict[Session, list[bytes]]:
        """Step every market `steps` times (not while IB is unreachable); what each session
        gets to see."""
        out: dict[Session, list[bytes]] = defaultdict(list)
        if not self.online:
            return out
        now = int(self.clock())
        for _ in range(steps):
            for market in self.markets.values():
                step = market.step()
                for session in self.sessions:
                    if market.symbol in session.streams:
                        out[session] += session.update(market, step, now)
        return out

    def glitch_depth(self) -> dict[Session, list[bytes]]:
        """One impossible depth operation to every depth subscription."""
        return {session: [stream.glitch() for streams in session.streams.values()
                          for stream in streams.values() if isinstance(stream, DepthStream)]
                for session in self.sessions}

    def error(self, code: int) -> dict[Session, list[bytes]]:
        """TWS error `code` (of ERRORS) to every session past startApi."""
        return {s: s.error(code) for s in self.sessions if s.client_id is not None}

    def set_online(self, online: bool) -> dict[Session, list[bytes]]:
        """IB's side of TWS going away (1100) or coming back with data maintained (1102)."""
        self.online = online
        code, text = CONNECTIVITY_RESTORED if online else CONNECTIVITY_LOST
        return {s: [wire.error(-1, code, text)] for s in self.sessions if s.client_id is not None}
