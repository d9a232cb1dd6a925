"""The TWS API socket protocol, sans-I/O: framing, the handshake, and the message vocabulary.

Every message is a 4-byte big-endian length, then fields each terminated by a NUL byte. A client
opens with `API\\0` (not length-prefixed) and one framed, unterminated version range `v157..178`;
the server answers with two fields, its version and its connection time; the client then sends
startApi with its client id. Message ids and field orders are those ib_async speaks
(client.py for requests, decoder.py for what it reads), server version 166 or later.

`ServerReader` turns a client's bytes into typed requests; the functions at the bottom build
what TWS sends back. Nothing here touches a socket.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Union

API_PREFIX = b"API\0"
SERVER_VERSION = 178
MIN_SERVER_VERSION = 166  # errors carry advancedOrderRejectJson; contract details drop fields
MAX_MESSAGE_SIZE = 0xFFFFFF  # TWS's own limit
_LENGTH = struct.Struct(">I")


class WireError(ValueError):
    """Bytes that are not the TWS API: bad prefix, bad length, bad field."""


class Out(IntEnum):
    """Message ids a client sends to TWS (IB calls them OUT)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_CURRENT_TIME = 49
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_COMPLETED_ORDERS = 99


class In(IntEnum):
    """Message ids TWS sends to a client (IB calls them IN)."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ERR_MSG = 4
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    MARKET_DEPTH = 12
    MARKET_DEPTH_L2 = 13
    MANAGED_ACCTS = 15
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    POSITION_END = 62
    ACCOUNT_UPDATE_MULTI_END = 74
    TICK_REQ_PARAMS = 81
    TICK_BY_TICK = 99
    COMPLETED_ORDERS_END = 102


TICK_BY_TICK_TYPES = {"Last": 1, "AllLast": 2, "BidAsk": 3, "MidPoint": 4}


# --- framing --------------------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    """Length-prefix one message."""
    return _LENGTH.pack(len(payload)) + payload


def _text(field: object) -> str:
    if isinstance(field, bool):
        return "1" if field else "0"
    return str(field)


def encode(*fields: object) -> bytes:
    """One framed message: each field as text, NUL-terminated (booleans as 1/0)."""
    return frame("".join(_text(f) + "\0" for f in fields).encode())


def split_fields(payload: bytes) -> list[str]:
    """The fields of one message's payload (every field is NUL-terminated)."""
    if not payload.endswith(b"\0"):
        raise WireError("message does not end with a NUL-terminated field")
    try:
        return payload.decode().split("\0")[:-1]
    except UnicodeDecodeError as exc:
        raise WireError(f"message is not UTF-8: {exc}") from None


class FrameReader:
    """Reassembles length-prefixed messages from a byte stream."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of every message completed by `data`."""
        self._buffer += data
        payloads: list[bytes] = []
        while len(self._buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if not 0 < size <= self.max_size:
                raise WireError(f"message length {size} outside 1..{self.max_size}")
            end = _LENGTH.size + size
            if len(self._buffer) < end:
                break
            payloads.append(bytes(self._buffer[_LENGTH.size:end]))
            del self._buffer[:end]
        return payloads


# --- what a client asks ---------------------------------------------------------------------

@dataclass(frozen=True)
class Contract:
    """The 12 contract fields every market-data request carries, in wire order."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade_date: str = ""
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""

    SIZE = 12

    @classmethod
    def parse(cls, fields: list[str]) -> "Contract":
        if len(fields) < cls.SIZE:
            raise WireError(f"contract needs {cls.SIZE} fields, got {len(fields)}")
        con_id, *rest = fields[:cls.SIZE]
        return cls(_int(con_id or "0", "conId"), *rest)


@dataclass(frozen=True)
class Handshake:
    min_version: int
    max_version: int


@dataclass(frozen=True)
class StartApi:
    client_id: int


@dataclass(frozen=True)
class MarketDataRequest:
    req_id: int
    contract: Contract
    snapshot: bool


@dataclass(frozen=True)
class DepthRequest:
    req_id: int
    contract: Contract
    rows: int
    smart: bool


@dataclass(frozen=True)
class TickByTickRequest:
    req_id: int
    contract: Contract
    tick_type: str


@dataclass(frozen=True)
class ContractDetailsRequest:
    req_id: int
    contract: Contract


@dataclass(frozen=True)
class Cancel:
    """cancelMktData, cancelMktDepth or cancelTickByTickData."""

    msg_id: Out
    req_id: int


@dataclass(frozen=True)
class Query:
    """A request TWS answers with data and an end marker (positions, orders, account...)."""

    msg_id: Out
    req_id: int = 0
    account: str = ""


@dataclass(frozen=True)
class Other:
    """Any request this vocabulary does not model (market data type, auto open orders...)."""

    msg_id: int


Request = Union[
    Handshake, StartApi, MarketDataRequest, DepthRequest, TickByTickRequest,
    ContractDetailsRequest, Cancel, Query, Other,
]


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise WireError(f"{name} is not an integer: {text[:40]!r}") from None


def _field(fields: list[str], index: int, name: str) -> str:
    if index >= len(fields):
        raise WireError(f"message {fields[0]} has no field {name} (index {index})")
    return fields[index]


def _req_id(fields: list[str], index: int) -> int:
    return _int(_field(fields, index, "reqId"), "reqId")


def parse_handshake(payload: bytes) -> Handshake:
    """`v<min>..<max>[ options]`, the one unterminated message of the protocol."""
    text = payload.decode(errors="replace").split(" ", 1)[0]
    low, sep, high = text.removeprefix("v").partition("..")
    if not text.startswith("v") or not sep:
        raise WireError(f"bad version range {text[:40]!r}")
    return Handshake(_int(low, "min version"), _int(high, "max version"))


def parse_request(fields: list[str]) -> Request:
    """One client message (fields after the handshake) as a typed request."""
    msg_id = _int(_field(fields, 0, "msgId"), "msgId")
    if msg_id == Out.START_API:
        return StartApi(_int(_field(fields, 2, "clientId"), "clientId"))
    if msg_id == Out.REQ_MKT_DATA:
        # After the contract, optional combo legs and delta-neutral fields, then always
        # genericTickList, snapshot, regulatorySnapshot, options: read snapshot from the end.
        _field(fields, 19, "mktDataOptions")
        return MarketDataRequest(_req_id(fields, 2), Contract.parse(fields[3:]), fields[-3] == "1")
    if msg_id == Out.REQ_MKT_DEPTH:
        rows = _int(_field(fields, 15, "numRows"), "numRows")
        return DepthRequest(_req_id(fields, 2), Contract.parse(fields[3:]), rows,
                            _field(fields, 16, "isSmartDepth") == "1")
    if msg_id == Out.REQ_TICK_BY_TICK_DATA:
        return TickByTickRequest(_req_id(fields, 1), Contract.parse(fields[2:]),
                                 _field(fields, 14, "tickType"))
    if msg_id == Out.REQ_CONTRACT_DATA:
        return ContractDetailsRequest(_req_id(fields, 2), Contract.parse(fields[3:]))
    if msg_id in (Out.CANCEL_MKT_DATA, Out.CANCEL_MKT_DEPTH):
        return Cancel(Out(msg_id), _req_id(fields, 2))
    if msg_id == Out.CANCEL_TICK_BY_TICK_DATA:
        return Cancel(Out.CANCEL_TICK_BY_TICK_DATA, _req_id(fields, 1))
    if msg_id in (Out.REQ_POSITIONS, Out.REQ_OPEN_ORDERS, Out.REQ_ALL_OPEN_ORDERS,
                  Out.REQ_COMPLETED_ORDERS, Out.REQ_IDS, Out.REQ_CURRENT_TIME):
        return Query(Out(msg_id))
    if msg_id == Out.REQ_ACCOUNT_UPDATES:
        if _field(fields, 2, "subscribe") != "1":
            return Other(msg_id)
        return Query(Out.REQ_ACCOUNT_UPDATES, account=_field(fields, 3, "acctCode"))
    if msg_id in (Out.REQ_ACCOUNT_UPDATES_MULTI, Out.REQ_EXECUTIONS):
        return Query(Out(msg_id), _req_id(fields, 2))
    return Other(msg_id)


class ServerReader:
    """TWS's side of one connection's inbound bytes: the `API\\0` prefix, the version range,
    then framed requests. Raises WireError on anything else."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._prefix = b""
        self._frames = FrameReader(max_size)
        self._handshaken = False

    def feed(self, data: bytes) -> list[Request]:
        if len(self._prefix) < len(API_PREFIX):
            needed = len(API_PREFIX) - len(self._prefix)
            self._prefix += data[:needed]
            data = data[needed:]
            if not API_PREFIX.startswith(self._prefix):
                raise WireError(f"connection does not start with API\\0: {self._prefix!r}")
        requests: list[Request] = []
        for payload in self._frames.feed(data):
            if not self._handshaken:
                requests.append(parse_handshake(payload))
                self._handshaken = True
            else:
                requests.append(parse_request(split_fields(payload)))
        return requests


# --- what TWS sends -------------------------------------------------------------------------

def server_hello(version: int, connection_time: str) -> bytes:
    """The handshake answer: exactly two fields."""
    return encode(version, connection_time)


def next_valid_id(order_id: int) -> bytes:
    return encode(In.NEXT_VALID_ID, 1, order_id)


def managed_accounts(accounts: list[str]) -> bytes:
    return encode(In.MANAGED_ACCTS, 1, ",".join(accounts))


def error(req_id: int, code: int, text: str) -> bytes:
    """errMsg; reqId -1 when no request is concerned. The last field is advancedOrderRejectJson."""
    return encode(In.ERR_MSG, 2, req_id, code, text, "")


def current_time(epoch_seconds: int) -> bytes:
    return encode(In.CURRENT_TIME, 1, epoch_seconds)


def end_of(query: Query, account: str) -> bytes | None:
    """The end marker that answers a Query with no data (None for REQ_IDS/REQ_CURRENT_TIME)."""
    match query.msg_id:
        case Out.REQ_POSITIONS:
            return encode(In.POSITION_END, 1)
        case Out.REQ_OPEN_ORDERS | Out.REQ_ALL_OPEN_ORDERS:
            return encode(In.OPEN_ORDER_END, 1)
        case Out.REQ_COMPLETED_ORDERS:
            return encode(In.COMPLETED_ORDERS_END)
        case Out.REQ_ACCOUNT_UPDATES:
            return encode(In.ACCT_DOWNLOAD_END, 1, query.account or account)
        case Out.REQ_ACCOUNT_UPDATES_MULTI:
            return encode(In.ACCOUNT_UPDATE_MULTI_END, 1, query.req_id)
        case Out.REQ_EXECUTIONS:
            return encode(In.EXECUTION_DATA_END, 1, query.req_id)
    return None


def stock_details(req_id: int, con_id: int, symbol: str, exchange: str, primary: str) -> bytes:
    """contractData for a US stock (server version >= 164 layout)."""
    return encode(
        In.CONTRACT_DATA, req_id, symbol, "STK", "", 0.0, "", exchange, "USD", symbol, "NMS",
        "NMS", con_id, 0.01, "", "ACTIVETIM,AD,ALERT,LMT,MKT,STP", f"SMART,{primary}", 1, 0,
        f"{symbol} COMMON STOCK", primary, "", "", "", "", "US/Eastern", "", "", "", "",
        0,  # numSecIds
        1, "", "", "26", "", "COMMON", 1, 1, 100,
    )


def contract_details_end(req_id: int) -> bytes:
    return encode(In.CONTRACT_DATA_END, 1, req_id)


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str) -> bytes:
    return encode(In.TICK_REQ_PARAMS, req_id, min_tick, bbo_exchange, 3)


def market_data_type(req_id: int, data_type: int = 1) -> bytes:
    return encode(In.MARKET_DATA_TYPE, 1, req_id, data_type)


def tick_price(req_id: int, tick_type: int, price: float, size: float) -> bytes:
    """tickPrice: 1 bid, 2 ask, 4 last, 9 close...; size rides along, attribute mask 0."""
    return encode(In.TICK_PRICE, 6, req_id, tick_type, price, size, 0)


def tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    """tickSize: 0 bid size, 3 ask size, 5 last size, 8 volume."""
    return encode(In.TICK_SIZE, 6, req_id, tick_type, size)


def tick_snapshot_end(req_id: int) -> bytes:
    return encode(In.TICK_SNAPSHOT_END, 1, req_id)


def depth(req_id: int, position: int, operation: int, side: int, price: float,
          size: float) -> bytes:
    """updateMktDepth: operation 0 insert, 1 update, 2 delete; side 0 ask, 1 bid."""
    return encode(In.MARKET_DEPTH, 1, req_id, position, operation, side, price, size)


def depth_l2(req_id: int, position: int, market_maker: str, operation: int, side: int,
             price: float, size: float) -> bytes:
    """updateMktDepthL2, as sent for SMART depth."""
    return encode(In.MARKET_DEPTH_L2, 1, req_id, position, market_maker, operation, side,
                  price, size, True)


def tick_by_tick_last(req_id: int, tick_type: int, epoch_seconds: int, price: float,
                      size: float, exchange: str, conditions: str = "") -> bytes:
    """tickByTick Last (1) or AllLast (2); attribute mask 0."""
    return encode(In.TICK_BY_TICK, req_id, tick_type, epoch_seconds, price, size, 0, exchange,
                  conditions)


def tick_by_tick_bid_ask(req_id: int, epoch_seconds: int, bid: float, ask: float,
                         bid_size: float, ask_size: float) -> bytes:
    return encode(In.TICK_BY_TICK, req_id, 3, epoch_seconds, bid, ask, bid_size, ask_size, 0)


def tick_by_tick_midpoint(req_id: int, epoch_seconds: int, midpoint: float) -> bytes:
    return encode(In.TICK_BY_TICK, req_id, 4, epoch_seconds, midpoint)
