"""Alpaca market-data stream v2 on the wire: the messages both ways, their JSON and msgpack
encodings, and the timestamps. Pure functions and types, shared by the client protocol
(handlers.alpaca.protocol) and the simulator's session (handlers.alpaca.sim.session).

Server frames are arrays of maps, each with its type `T` as the first key. Client messages are
single maps with an `action`. A client that sends `Content-Type: application/msgpack` on the
upgrade gets binary msgpack frames, where `t` is the msgpack Timestamp extension (type -1);
otherwise text JSON frames, where `t` is an RFC 3339 string with up to 9 fractional digits
(written as Go's RFC3339Nano: trailing zeros dropped).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated, Any, Union

import msgspec
from msgspec import field
from msgspec.msgpack import Ext

from tickmesh.handlers.common import values

JSON = "json"
MSGPACK = "msgpack"
ENCODINGS = (JSON, MSGPACK)
MSGPACK_CONTENT_TYPE = "application/msgpack"
KEY_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"

ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    411: "insufficient scope",
    500: "internal error",
}

STOCK_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
TRADE_FOLLOWERS = ("corrections", "cancelErrors")
"""Channels the server adds to every trade subscription, unasked."""
OTHER_FEED_CHANNELS = ("orderbooks", "news")
"""Channels of the crypto and news streams: subscribing to them on a stock feed is error 410."""
OTHER_TYPES = frozenset({"b", "u", "d", "s", "l", "c", "x", "o", "n"})
"""Server message types this package reads past: bars, statuses, LULDs, corrections, cancels,
order books, news."""

NS = 1_000_000_000
MAX_NS = 2**63
_LOW34 = (1 << 34) - 1


# --- server -> client ----------------------------------------------------------------------

Time = Union[str, Ext]
"""`t`: an RFC 3339 string in JSON, the Timestamp extension in msgpack."""


# The wire's shapes, with any numbers: what a message that fails the checks below is read as,
# to tell why it failed (handlers.common.values' reasons).
class LooseTrade(msgspec.Struct, tag_field="T", tag="t", kw_only=True, gc=False):
    symbol: str = field(name="S")
    trade_id: int = field(name="i")
    exchange: str = field(name="x")
    price: float = field(name="p")
    size: float = field(name="s")
    time: Time = field(name="t")
    conditions: list[str] = field(name="c", default_factory=list)
    tape: str = field(name="z", default="")


class LooseQuote(msgspec.Struct, tag_field="T", tag="q", kw_only=True, gc=False):
    symbol: str = field(name="S")
    bid_exchange: str = field(name="bx")
    bid_price: float = field(name="bp")
    bid_size: float = field(name="bs")
    ask_exchange: str = field(name="ax")
    ask_price: float = field(name="ap")
    ask_size: float = field(name="as")
    time: Time = field(name="t")
    conditions: list[str] = field(name="c", default_factory=list)
    tape: str = field(name="z", default="")


Symbol = Annotated[str, msgspec.Meta(min_length=1)]


# The same, checked by the C decoder itself (the hot path): a non-empty symbol, finite numbers,
# a trade price > 0, sizes and quote prices >= 0. A frame with any message that fails these
# is decoded again message by message (FrameDecoder.salvage). gc=False: the garbage collector
# need not track data messages (no reference cycles, millions).
class TradeMessage(LooseTrade, tag="t", kw_only=True, gc=False):
    symbol: Symbol = field(name="S")
    price: values.Price = field(name="p")
    size: values.Size = field(name="s")


class QuoteMessage(LooseQuote, tag="q", kw_only=True, gc=False):
    symbol: Symbol = field(name="S")
    bid_price: values.QuotePrice = field(name="bp")
    bid_size: values.Size = field(name="bs")
    ask_price: values.QuotePrice = field(name="ap")
    ask_size: values.Size = field(name="as")


class Success(msgspec.Struct, tag_field="T", tag="success"):
    msg: str


class Error(msgspec.Struct, tag_field="T", tag="error"):
    code: int
    msg: str


class Subscription(msgspec.Struct, tag_field="T", tag="subscription"):
    """The full current subscription, per channel (field names are the wire's)."""

    trades: list[str] = []
    quotes: list[str] = []
    bars: list[str] = []
    updatedBars: list[str] = []  # noqa: N815 - the wire's name
    dailyBars: list[str] = []  # noqa: N815
    statuses: list[str] = []
    lulds: list[str] = []
    corrections: list[str] = []
    cancelErrors: list[str] = []  # noqa: N815


ServerMessage = Union[TradeMessage, QuoteMessage, Success, Error, Subscription]
LooseMessage = Union[LooseTrade, LooseQuote]


class _Typed(msgspec.Struct):
    """Just the type of a server message, to tell an unhandled type from garbage."""

    T: str = ""


def error(code: int) -> Error:
    return Error(code, ERRORS[code])


def _json_time(obj: Any) -> str:
    if isinstance(obj, Ext):
        return format_timestamp(ext_to_ns(obj))
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_json_encoder = msgspec.json.Encoder(enc_hook=_json_time)
_msgpack_encoder = msgspec.msgpack.Encoder()


def encode_frame(messages: list[Any], encoding: str) -> bytes:
    """Server messages -> one frame (JSON text as UTF-8 bytes, or msgpack). Times are given as
    Timestamp extensions (`timestamp_ext`) and become RFC 3339 strings in JSON."""
    if encoding == MSGPACK:
        return _msgpack_encoder.encode(messages)
    return _json_encoder.encode(messages)


class FrameDecoder:
    """Client side: a server frame -> its messages. `decode` is the fast path and raises
    msgspec.DecodeError or ValidationError if anything in the frame is off; `salvage` then
    decodes message by message, and says why each one it drops was dropped."""

    def __init__(self, encoding: str) -> None:
        module = msgspec.msgpack if encoding == MSGPACK else msgspec.json
        self.json = encoding != MSGPACK
        self.decode = module.Decoder(list[ServerMessage]).decode
        self._raw = module.Decoder(list[msgspec.Raw]).decode
        self._one = module.Decoder(ServerMessage).decode
        self._loose = module.Decoder(LooseMessage).decode
        self._typed = module.Decoder(_Typed).decode

    def salvage(self, frame: bytes) -> tuple[list[ServerMessage], list[str]]:
        """(the good messages, the reason for each message dropped: "unhandled" for a type
        this package reads past, a handlers.common.values reason, or "malformed"). Raises
        ValueError (msgspec's errors among them) if the frame is not an array at all.

        JSON that strict JSON cannot read (NaN, Infinity, 1e999) is split into its messages by
        a tolerant scan (values.split_json_array), and each is read by values.read_json."""
        try:
            raws: list[Any] = self._raw(frame)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            if not self.json:
                raise
            raws = values.split_json_array(frame)
        messages: list[ServerMessage] = []
        dropped: list[str] = []
        for raw in raws:
            try:
                messages.append(self._one(raw))
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                dropped.append(self._why(raw))
        return messages, dropped

    def _why(self, raw: Any) -> str:
        """Why a message failed the strict decoder."""
        message = self._read(raw, self._loose, LooseMessage)
        if isinstance(message, LooseTrade):
            return why_dropped(message.symbol, values.trade_problem(message.price, message.size))
        if isinstance(message, LooseQuote):
            return why_dropped(message.symbol, values.quote_problem(
                message.bid_price, message.bid_size, message.ask_price, message.ask_size))
        typed = self._read(raw, self._typed, _Typed)
        return "unhandled" if typed is not None and typed.T in OTHER_TYPES else values.MALFORMED

    def _read(self, raw: Any, decode: Any, shape: type) -> Any:
        """`raw` as `shape`, tolerating what values.read_json reads in JSON; None if it is not."""
        try:
            return decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            if not self.json:
                return None
        try:
            return msgspec.convert(values.read_json(bytes(raw)), shape)
        except (ValueError, RecursionError):  # msgspec.ValidationError is a ValueError
            return None


def why_dropped(symbol: str, problem: str) -> str:
    """The reason for a data message that failed the strict decoder: its numbers' problem, an
    empty symbol, or (neither: a field of a wrong type) malformed."""
    if problem:
        return problem
    return values.BAD_SYMBOL if not symbol else values.MALFORMED


# --- client -> server ----------------------------------------------------------------------

def auth_message(key: str, secret: str) -> dict[str, str]:
    return {"action": "auth", "key": key, "secret": secret}


def subscribe_message(channels: dict[str, list[str]], action: str = "subscribe") -> dict:
    """`action` is "subscribe" or "unsubscribe"; channels maps e.g. "trades" to symbols."""
    return {"action": action, **channels}


def encode_client(message: dict, encoding: str) -> bytes | str:
    """A client message: msgpack bytes (a binary frame) or JSON text."""
    if encoding == MSGPACK:
        return _msgpack_encoder.encode(message)
    return _json_encoder.encode(message).decode()


def decode_client(data: bytes | str) -> Any:
    """Server side: a client message, by its frame type: text is JSON, binary is msgpack.
    Raises msgspec.DecodeError."""
    if isinstance(data, str):
        return msgspec.json.decode(data)
    return msgspec.msgpack.decode(data)


# --- timestamps ------------------------------------------------------------------------------

def timestamp_ext(ns: int) -> Ext:
    """ns since the epoch -> the msgpack Timestamp extension, in its smallest form."""
    seconds, nanos = divmod(ns, NS)
    if nanos == 0 and 0 <= seconds < 2**32:
        return Ext(-1, seconds.to_bytes(4, "big"))
    if 0 <= seconds < 2**34:
        return Ext(-1, (nanos << 34 | seconds).to_bytes(8, "big"))
    return Ext(-1, nanos.to_bytes(4, "big") + seconds.to_bytes(8, "big", signed=True))


def ext_to_ns(ext: Ext) -> int:
    """The msgpack Timestamp extension -> ns since the epoch. Raises ValueError if it is not one."""
    data = ext.data
    if ext.code != -1:
        raise ValueError(f"extension type {ext.code} is not a timestamp")
    if len(data) == 8:
        value = int.from_bytes(data, "big")
        return (value & _LOW34) * NS + (value >> 34)
    if len(data) == 4:
        return int.from_bytes(data, "big") * NS
    if len(data) == 12:
        return int.from_bytes(data[4:], "big", signed=True) * NS + int.from_bytes(data[:4], "big")
    raise ValueError(f"a timestamp extension has 4, 8 or 12 bytes, not {len(data)}")


def format_timestamp(ns: int) -> str:
    """ns since the epoch -> RFC 3339 in UTC, e.g. 2021-02-22T15:51:45.335689322Z."""
    seconds, nanos = divmod(ns, NS)
    text = _second_text(seconds)
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    """Seconds since the epoch -> 'YYYY-MM-DDTHH:MM:SS' (UTC); cached, since it repeats."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=4096)
def _epoch_second(prefix: str) -> int:
    """'YYYY-MM-DDTHH:MM:SS' (UTC) -> seconds since the epoch; cached, since it repeats."""
    if len(prefix) != 19 or prefix[10] != "T" or not prefix.isascii():
        raise ValueError(f"not an RFC 3339 date and time: {prefix!r}")
    return calendar.timegm(datetime.fromisoformat(prefix).timetuple())


def parse_timestamp(text: str) -> int:
    """RFC 3339 (a fraction of 0 to 9 digits; Z or a numeric offset) -> ns since the epoch,
    exactly."""
    seconds = _epoch_second(text[:19])
    rest = text[19:]
    if rest.endswith("Z"):
        fraction, offset = rest[:-1], 0
    else:
        fraction, offset = rest[:-6], _offset_seconds(rest[-6:])
    return (seconds - offset) * NS + _nanos(fraction)


def _nanos(fraction: str) -> int:
    """'' or '.' and 1 to 9 digits -> ns."""
    if not fraction:
        return 0
    digits = fraction[1:]
    valid = fraction[0] == "." and 0 < len(digits) <= 9 and digits.isascii() and digits.isdigit()
    if not valid:
        raise ValueError(f"bad fraction of a second: {fraction!r}")
    return int(digits) * 10 ** (9 - len(digits))


def _offset_seconds(offset: str) -> int:
    sign, hours, colon, minutes = offset[:1], offset[1:3], offset[3:4], offset[4:]
    digits = hours + minutes
    if sign not in ("+", "-") or colon != ":" or len(digits) != 4 \
            or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"bad time zone offset {offset!r}")
    value = int(hours) * 3600 + int(minutes) * 60
    return -value if sign == "-" else value


def time_to_ns(value: Time) -> int:
    """`t` in either encoding -> ns since the epoch; ValueError if it is not a valid time
    (the epoch itself, 0, is none: a message with no time).
    The usual case, msgpack's 8-byte timestamp, is inlined: it is on the hot path."""
    if type(value) is Ext:
        data = value.data
        if len(data) == 8 and value.code == -1:
            packed = int.from_bytes(data)
            ns = (packed & _LOW34) * NS + (packed >> 34)
            if 0 < ns < MAX_NS:  # never negative in the 8-byte form
                return ns
        ns = ext_to_ns(value)
    else:
        ns = parse_timestamp(value)  # type: ignore[arg-type]
    if not 0 < ns < MAX_NS:  # 0: no time at all
        raise ValueError(f"time out of range: {ns} ns")
    return ns
