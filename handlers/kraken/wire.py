"""Kraken's public WebSocket API v1 on the wire, both directions: the messages, the pair names
and their validation, shared by the client protocol (handlers.kraken.protocol) and the
simulator (handlers.kraken.sim). Pure: no I/O.

Wire facts (Kraken's WebSocket API v1 documentation, wss://ws.kraken.com):
- Events are JSON objects with an `event`: on connect the server sends
  `{"connectionID":..,"event":"systemStatus","status":"online","version":"1.9.x"}` (status
  also maintenance, cancel_only, limit_only, post_only); `{"event":"heartbeat"}` about once a
  second when no data flows; a client's `{"event":"ping","reqid":7}` is answered
  `{"event":"pong","reqid":7}`; a request the server cannot read gets
  `{"event":"error","errorMessage":"..."}`.
- `{"event":"subscribe","pair":["XBT/USD","ETH/USD"],"subscription":{"name":"book",
  "depth":1000}}` (one channel per request; `unsubscribe` has the same shape) is answered by
  one `subscriptionStatus` per pair: `{"channelID":..,"channelName":"book-1000",
  "event":"subscriptionStatus","pair":"XBT/USD","status":"subscribed",
  "subscription":{"depth":1000,"name":"book"}}`, or status "unsubscribed", or status "error"
  with `errorMessage` for that pair alone (e.g. "Currency pair not supported XYZ/USD"): the
  others of the request are subscribed all the same.
- Data are JSON arrays `[channelID, payload..., channelName, pair]`. channelID is deprecated:
  data are keyed by channel name and pair.
  * book (channel name `book-<depth>`, depth 10, 25, 100, 500 or 1000): first a snapshot
    `{"as":[[price, volume, timestamp], ...], "bs":[...]}` (asks best first, bids best first),
    then updates `{"a":[...]}` and/or `{"b":[...]}`, both sides coming as two payload objects
    of one message; the last object carries `"c"`, the checksum (handlers.kraken.checksum).
    Each level is [price, volume, timestamp] with an optional 4th element "r" (a republish:
    a level that came back into the subscribed depth). Volume 0 removes the level; levels
    beyond the depth are dropped by the client, with no message.
  * trade: `[[price, volume, time, side "b"|"s", orderType "m"|"l", misc], ...]`, side the
    taker's.
  * spread: `[bid, ask, timestamp, bidVolume, askVolume]`.
  Prices, volumes and timestamps ("1582905487.439814": seconds) are decimal strings.

Symbols: `BASE-QUOTE` on the bus as at every venue; Kraken's pair is `BASE/QUOTE` with its own
names for a few assets (NATIVE_ASSETS: XBT is BTC, XDG is DOGE). The event's native_symbol keeps
Kraken's spelling (XBT/USD).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

import msgspec

from tickmesh.handlers.common.symbols import split_crypto

PROVIDER = "kraken"
BOOK, TRADE, SPREAD = "book", "trade", "spread"
CHANNELS = (BOOK, TRADE, SPREAD)
DEPTHS = (10, 25, 100, 500, 1000)
NS_PER_SECOND = 1_000_000_000

NATIVE_ASSETS = {"BTC": "XBT", "DOGE": "XDG"}
"""Our asset name -> Kraken's, where they differ (the documented table; all others agree)."""
OUR_ASSETS = {native: ours for ours, native in NATIVE_ASSETS.items()}

SUBSCRIBED, UNSUBSCRIBED, ERROR = "subscribed", "unsubscribed", "error"
ONLINE = "online"
PAIR_NOT_SUPPORTED = "Currency pair not supported"
DEPTH_NOT_SUPPORTED = "Subscription depth not supported"
NOT_SUBSCRIBED = "Subscription Not Found"
ALREADY_SUBSCRIBED = "Already subscribed"
MALFORMED_REQUEST = "Malformed request"
UNSUPPORTED_EVENT = "Unsupported event"
SYSTEM_STATES = ("online", "maintenance", "cancel_only", "limit_only", "post_only")
ERROR_CODES = {PAIR_NOT_SUPPORTED: 1, DEPTH_NOT_SUPPORTED: 2, NOT_SUBSCRIBED: 3,
               ALREADY_SUBSCRIBED: 4, MALFORMED_REQUEST: 5, UNSUPPORTED_EVENT: 6}
"""Kraken's errors have no numbers; these are ours, for Status.code and provider_errors (0: any
other message; a system status other than online is 10 + its index in SYSTEM_STATES)."""


class Malformed(ValueError):
    """A frame or message that does not follow the protocol. `kind` names what was wrong (a
    bad_input reason); the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


# --- pairs -------------------------------------------------------------------------------

def native_pair(symbol: str) -> str:
    """BTC-USD -> XBT/USD (ValueError for a symbol not in the BASE-QUOTE form)."""
    base, quote = split_crypto(symbol)
    return f"{NATIVE_ASSETS.get(base, base)}/{NATIVE_ASSETS.get(quote, quote)}"


def our_symbol(pair: str) -> str:
    """XBT/USD -> BTC-USD; "" for a string that is not a Kraken pair."""
    base, slash, quote = pair.partition("/")
    if not (slash and base and quote and base.isalnum() and quote.isalnum()):
        return ""
    return f"{OUR_ASSETS.get(base, base)}-{OUR_ASSETS.get(quote, quote)}"


def channel_name(name: str, depth: int = 0) -> str:
    """The data's channel name: book-1000, trade, spread."""
    return f"{name}-{depth}" if name == BOOK else name


# --- client requests ---------------------------------------------------------------------

def request(kind: str, pairs: Iterable[str], name: str, depth: int = 0) -> str:
    """A subscribe or unsubscribe (kind) of one channel for `pairs` (Kraken's names)."""
    subscription: dict[str, Any] = {"name": name}
    if name == BOOK:
        subscription["depth"] = depth
    return encode({"event": kind, "pair": list(pairs), "subscription": subscription})


def ping(reqid: int) -> str:
    return encode({"event": "ping", "reqid": reqid})


class Subscription(msgspec.Struct):
    name: str
    depth: int = 0


class Request(msgspec.Struct):
    """What a client sends: subscribe, unsubscribe or ping."""

    event: str
    pair: list[str] = []
    subscription: Subscription | None = None
    reqid: int | None = None


def decode_request(data: str | bytes) -> Request:
    try:
        return msgspec.json.decode(data, type=Request)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise Malformed("request", str(exc)[:200]) from None


# --- server messages ---------------------------------------------------------------------

def encode(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"))


def system_status(connection_id: int, status: str = ONLINE, version: str = "1.9.5"
                  ) -> dict[str, Any]:
    return {"connectionID": connection_id, "event": "systemStatus", "status": status,
            "version": version}


def subscription_status(pair: str, status: str, name: str, depth: int = 0, channel_id: int = 0,
                        error: str = "", reqid: int | None = None) -> dict[str, Any]:
    subscription: dict[str, Any] = {"name": name}
    if name == BOOK and depth:
        subscription["depth"] = depth
    message: dict[str, Any] = {"event": "subscriptionStatus", "pair": pair, "status": status,
                               "subscription": subscription}
    if status == ERROR:
        message["errorMessage"] = error
    else:
        message["channelID"] = channel_id
        message["channelName"] = channel_name(name, depth)
    if reqid is not None:
        message["reqid"] = reqid
    return message


def error(message: str, reqid: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"event": "error", "errorMessage": message}
    if reqid is not None:
        out["reqid"] = reqid
    return out


class SubscriptionStatus(msgspec.Struct):
    status: str
    pair: str = ""
    channelName: str = ""
    errorMessage: str = ""
    subscription: dict[str, Any] = {}


class SystemStatus(msgspec.Struct):
    status: str
    version: str = ""


class ErrorMessage(msgspec.Struct):
    errorMessage: str = ""


def decode(data: bytes | str) -> Any:
    """A server frame -> its JSON value: an event (dict with a string `event`) or a data array
    (a list of at least three elements ending in two strings). Raises Malformed."""
    try:
        message = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Malformed("malformed_frame", f"not JSON: {str(exc)[:100]}") from None
    if isinstance(message, dict) and isinstance(message.get("event"), str):
        return message
    if (isinstance(message, list) and len(message) >= 3 and isinstance(message[-1], str)
            and isinstance(message[-2], str)):
        return message
    raise Malformed("malformed_frame", f"neither an event nor a data array: "
                                       f"{str(message)[:100]}")


def convert(raw: dict[str, Any], shape: type) -> Any:
    """The raw event as `shape`; Malformed("malformed_<event>") if it does not fit."""
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        raise Malformed(f"malformed_{raw.get('event', 'event')}"[:40], str(exc)[:200]) from None


# --- values ------------------------------------------------------------------------------

def number(text: Any, kind: str) -> float:
    """A decimal string as a finite float; Malformed(kind) if it is not one. ASCII only: float()
    reads other scripts' digits too ("١٠١"), which the checksum, over the strings as received,
    cannot."""
    if not isinstance(text, str) or not text.isascii():
        raise Malformed(kind, f"not a decimal string: {str(text)[:40]!r}")
    try:
        value = float(text)
    except ValueError:
        raise Malformed(kind, f"not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise Malformed(kind, f"not a finite number: {text[:40]!r}")
    return value


def price(text: Any) -> float:
    value = number(text, "bad_price")
    if value <= 0:
        raise Malformed("bad_price", f"price not > 0: {text[:40]!r}")
    return value


def volume(text: Any) -> float:
    value = number(text, "bad_size")
    if value < 0:
        raise Malformed("bad_size", f"volume < 0: {text[:40]!r}")
    return value


def level(price_text: Any, volume_text: Any) -> tuple[float, float]:
    """A book level's price and volume, as price() and volume() read them. Malformed. (The
    hot path: two valid decimal strings are read at once; anything else goes through price()
    and volume(), which say what is wrong.)"""
    if (type(price_text) is str and type(volume_text) is str and price_text.isascii()
            and volume_text.isascii()):
        try:
            price_value, volume_value = float(price_text), float(volume_text)
        except ValueError:
            pass
        else:
            if 0 < price_value < math.inf and 0 <= volume_value < math.inf:  # NaN fails both
                return price_value, volume_value
    return price(price_text), volume(volume_text)


def timestamp(text: Any) -> int:
    """Kraken's "1582905487.439814" (seconds) -> ns since the epoch, exactly. Malformed."""
    if not isinstance(text, str):
        raise Malformed("bad_time", f"not a decimal string: {str(text)[:40]!r}")
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        raise Malformed("bad_time", f"not a time: {text[:40]!r}") from None
    if not seconds.is_finite() or not 0 < seconds < 10**11:
        raise Malformed("bad_time", f"not a time: {text[:40]!r}")
    return int(seconds * NS_PER_SECOND)


def format_time(ns: int) -> str:
    """ns since the epoch -> Kraken's form, seconds with six decimals."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    return f"{seconds}.{rest // 1000:06d}"
