"""The Coinbase Exchange WebSocket feed on the wire, both directions: the messages, their
validation and the vocabulary, shared by the client protocol (handlers.coinbase.protocol) and
the simulator (handlers.coinbase.sim). Pure: no I/O.

Wire facts (Coinbase Exchange's WebSocket documentation, wss://ws-feed.exchange.coinbase.com):
every frame is one JSON object tagged by `type`; new types may appear and are to be ignored.
- The client must send `subscribe` within 5 s of the open, or it is disconnected:
  `{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2_batch","matches",
  "heartbeat"]}` (a channel may also be `{"name":..,"product_ids":[..]}`); `unsubscribe` has
  the same shape. Each is answered by `subscriptions`, listing every channel and its products
  as they now are. A request the server refuses is ignored as a whole and answered by
  `{"type":"error","message":"Failed to subscribe","reason":"XYZ-USD is not a valid product"}`.
  A product the exchange does not list (unknown, or delisted: XRP-USD got this in 2023) is
  refused so: the reason names the first such product of the request, the `subscriptions`
  that follows is unchanged (nothing of the request was subscribed), and the connection stays
  open (ccxt/ccxt#17810; "ignored entirely": coinbase/coinbase-pro-node#174, whose older
  reason "Invalid product ID provided" named no product).
- `level2` needs an authenticated subscribe (key, passphrase, timestamp, signature fields);
  `level2_batch` has the same messages in 50 ms batches and needs none. Both start with a
  `snapshot` (string prices and sizes, no time, no sequence) then `l2update`s whose `changes`
  are [side, price, size] with the level's new absolute size ("0" removes it). Level-2
  messages carry no sequence number.
- `matches`: first `last_match` (the product's latest trade, from before the subscription),
  then `match` per trade. `side` is the MAKER's side: "sell" means the taker bought (an
  up-tick). `trade_id` counts the product's trades, +1 each. `sequence` is the product's
  sequence over ALL of its messages (the full channel's received/open/done/change too), so on
  this channel it increases but skips.
- `heartbeat` every second per product: `sequence` (the product's latest, as above) and
  `last_trade_id` (its latest trade; reported as 0 by some deployments: then unknown).
- `error` {"message", "reason"}: the server also sends one before it disconnects a client
  (ErrSlowConsume: too much backed up; ErrSlowRead: the client sends too much; Message too
  big).
Times are RFC 3339 in UTC with microseconds: "2022-08-04T15:25:05.010758Z".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Iterable, Literal

import msgspec

PROVIDER = "coinbase"
LEVEL2 = "level2"
LEVEL2_BATCH = "level2_batch"
MATCHES = "matches"
HEARTBEAT = "heartbeat"
BOOK_CHANNELS = (LEVEL2_BATCH, LEVEL2)
CHANNELS = (LEVEL2, LEVEL2_BATCH, MATCHES, HEARTBEAT)
SUBSCRIBE_DEADLINE = 5.0
"""Seconds the server waits for the first subscribe before it disconnects."""

FAILED_SUBSCRIBE = "Failed to subscribe"
FAILED_UNSUBSCRIBE = "Failed to unsubscribe"
SLOW_CONSUME = "ErrSlowConsume"
SLOW_READ = "ErrSlowRead"
TOO_BIG = "Message too big"
ERROR_CODES = {FAILED_SUBSCRIBE: 1, FAILED_UNSUBSCRIBE: 2, SLOW_CONSUME: 3, SLOW_READ: 4,
               TOO_BIG: 5}
"""Coinbase's errors have no numbers; these are ours, for Status.code and provider_errors
(0: any other message)."""
CLOSING_ERRORS = (SLOW_CONSUME, SLOW_READ, TOO_BIG)
"""Errors after which the server disconnects the client."""
NOT_A_VALID_PRODUCT = " is not a valid product"
"""The end of the reason of an error refusing a product the exchange does not list."""

NS_PER_SECOND = 1_000_000_000


class Malformed(ValueError):
    """A frame or message that does not follow the protocol. `kind` names what was wrong (a
    bad_input reason); the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


# --- client requests -----------------------------------------------------------------------

def request(kind: str, products: Iterable[str], channels: Iterable[str],
            auth: dict[str, str] | None = None) -> str:
    """A subscribe or unsubscribe frame (kind), with the auth fields if given."""
    body: dict[str, Any] = {"type": kind, "product_ids": list(products),
                            "channels": list(channels)}
    return json.dumps({**body, **(auth or {})}, separators=(",", ":"))


def signature(secret: str, timestamp: str) -> str:
    """Coinbase's signature of a WebSocket subscribe: base64 HMAC-SHA256, keyed by the
    base64-decoded secret, of timestamp + "GET" + "/users/self/verify"."""
    try:
        key = base64.b64decode(secret, validate=True)
    except ValueError:
        key = secret.encode()  # not base64 (a placeholder): only a simulator takes it
    digest = hmac.new(key, f"{timestamp}GET/users/self/verify".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class ChannelSpec(msgspec.Struct):
    name: str
    product_ids: list[str] = []


class Request(msgspec.Struct):
    """What a client sends: subscribe or unsubscribe (auth fields, when given, kept)."""

    type: str
    product_ids: list[str] = []
    channels: list[str | ChannelSpec] = []
    key: str = ""
    passphrase: str = ""
    timestamp: str = ""
    signature: str = ""

    def pairs(self) -> list[tuple[str, str]]:
        """Every (channel, product) the request names."""
        out = []
        for channel in self.channels:
            if isinstance(channel, str):
                out.extend((channel, product) for product in self.product_ids)
            else:
                out.extend((channel.name, p) for p in channel.product_ids or self.product_ids)
        return out


def decode_request(data: str | bytes) -> Request:
    try:
        return msgspec.json.decode(data, type=Request)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise Malformed("request", str(exc)[:200]) from None


# --- server messages -----------------------------------------------------------------------

def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def subscriptions(channels: dict[str, Iterable[str]]) -> dict[str, Any]:
    return {"type": "subscriptions",
            "channels": [{"name": name, "product_ids": sorted(products)}
                         for name, products in channels.items()]}


def error(message: str, reason: str = "") -> dict[str, Any]:
    return {"type": "error", "message": message, "reason": reason}


def not_listed(product: str) -> str:
    """The reason of a refusal of `product`, which the exchange does not list."""
    return f"{product}{NOT_A_VALID_PRODUCT}"


def refused_product(reason: str) -> str:
    """The product a refusal's reason says the exchange does not list ("" if it says not)."""
    product = reason.removesuffix(NOT_A_VALID_PRODUCT)
    return product if product != reason and product else ""


Side = Literal["buy", "sell"]
Level = tuple[str, str]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
"""Trade ids and sequences: exact in a double, as the exchange's are."""


class Snapshot(msgspec.Struct):
    product_id: str
    bids: list[Level]
    asks: list[Level]
    time: str = ""


class L2Update(msgspec.Struct):
    product_id: str
    changes: list[tuple[Side, str, str]]
    time: str


class Match(msgspec.Struct):
    """`match` or `last_match`."""

    trade_id: Count
    sequence: Count
    time: str
    product_id: str
    size: str
    price: str
    side: Side
    maker_order_id: str = ""
    taker_order_id: str = ""


class Heartbeat(msgspec.Struct):
    sequence: Count
    last_trade_id: Count
    product_id: str
    time: str


class Error(msgspec.Struct):
    message: str = ""
    reason: str = ""


class Subscriptions(msgspec.Struct):
    channels: list[ChannelSpec] = []


def decode_message(data: str | bytes) -> dict[str, Any]:
    """A server frame -> its JSON object (still raw). Raises Malformed."""
    try:
        message = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise Malformed("malformed_frame", f"not JSON: {str(exc)[:100]}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise Malformed("malformed_frame", f"not an object with a string `type`: "
                                           f"{str(message)[:100]}")
    return message


def convert(raw: dict[str, Any], shape: type) -> Any:
    """The raw message as `shape`; Malformed("malformed_<type>") if it does not fit."""
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        raise Malformed(f"malformed_{raw.get('type', 'message')}"[:40], str(exc)[:200]) from None


_PRODUCT = re.compile(rb'"product_id"\s*:\s*"([A-Z0-9]{1,20}-[A-Z0-9]{1,20})"')


def product_in(data: bytes) -> str:
    """The first product id a frame names, found without parsing it ("" if none): tells which
    book a frame that cannot be decoded may have changed."""
    found = _PRODUCT.search(data[:4096])
    return found.group(1).decode() if found else ""


# --- values --------------------------------------------------------------------------------

def number(text: str, kind: str) -> float:
    """A decimal string as a finite float; Malformed(kind) if it is not one."""
    try:
        value = float(text)
    except (ValueError, TypeError):
        raise Malformed(kind, f"not a number: {str(text)[:40]!r}") from None
    if not math.isfinite(value):
        raise Malformed(kind, f"not a finite number: {text[:40]!r}")
    return value


def level(price: str, size: str) -> tuple[float, float]:
    """(price > 0, size >= 0) of a wire level; Malformed("bad_price"/"bad_size")."""
    p, s = number(price, "bad_price"), number(size, "bad_size")
    if p <= 0:
        raise Malformed("bad_price", f"price not > 0: {price[:40]!r}")
    if s < 0:
        raise Malformed("bad_size", f"size < 0: {size[:40]!r}")
    return p, s


_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str) -> int:
    """RFC 3339 -> ns since the epoch, exactly ("2022-08-04T15:25:05.010758Z"). Malformed."""
    found = _TIME.match(text)
    if not found:
        raise Malformed("bad_time", f"not an RFC 3339 time: {text[:40]!r}")
    whole, fraction, zone = found.groups()
    try:
        moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        raise Malformed("bad_time", f"not a valid time: {text[:40]!r}") from None
    seconds = int(moment.timestamp())
    return seconds * NS_PER_SECOND + int((fraction or "0").ljust(9, "0"))


def format_time(ns: int) -> str:
    """ns since the epoch -> Coinbase's form, microseconds and Z."""
    seconds, rest = divmod(ns, NS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rest // 1000:06d}Z"
