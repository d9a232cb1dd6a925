"""Binance spot market data on the wire, both directions: the WebSocket streams, the
subscription requests and answers, and the REST depth snapshot, shared by the client protocol
(handlers.binance.protocol) and the simulator (handlers.binance.sim). Pure: no I/O.

Wire facts (Binance's "WebSocket Streams" and "Market Data endpoints" docs):
- Streams are named `<lower-case symbol>@<channel>`: `btcusdt@depth@100ms` (diff depth, every
  100 ms), `btcusdt@trade`, `btcusdt@bookTicker`. A combined-stream connection (`/stream`)
  wraps every data message as `{"stream": NAME, "data": PAYLOAD}`; a raw one (`/ws/NAME`)
  sends the payload alone.
- `{"method":"SUBSCRIBE","params":[NAMES],"id":N}` (and UNSUBSCRIBE) is answered
  `{"result":null,"id":N}`; a bad request `{"code":2,"msg":"Invalid request: ..."}`, bad JSON
  `{"code":3,"msg":"Invalid JSON: ..."}` (codes 0 and 1: an unknown property, a bad value).
  At most 1024 streams per connection and 5 incoming messages per second (pings included).
- depthUpdate `{"e":"depthUpdate","E":ms,"s":"BNBBTC","U":first,"u":last,"b":[[p,q]],"a":...}`:
  prices and quantities are decimal strings, quantities absolute, "0" removes the level.
- trade `{"e":"trade","E":ms,"s":..,"t":id,"p":..,"q":..,"T":ms,"m":buyer_is_maker,"M":..}`:
  `m` true means the buyer was the maker, so the aggressor sold.
- bookTicker `{"u":update_id,"s":..,"b":..,"B":..,"a":..,"A":..}` (no timestamp).
- `{"e":"serverShutdown","E":ms}` before the server closes the connection (at most 24 h).
- REST `GET /api/v3/depth?symbol=BNBBTC&limit=N` -> `{"lastUpdateId":N,"bids":[[p,q]],
  "asks":[[p,q]]}`; its request weight depends on the limit (DEPTH_WEIGHTS), against 6000 per
  minute per IP.
- REST limits ("LIMITS" in the REST API docs): every answer carries
  `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`, e.g. `X-MBX-USED-WEIGHT-1M`, the weight the
  IP used in the current interval (intervals are fixed: a minute starts every minute). Past
  the limit Binance answers 429; an IP that keeps sending after 429s is banned with 418, for 2
  minutes up to 3 days. Both carry `Retry-After`, the seconds to wait (429: to prevent a ban;
  418: until the ban is over). The limits are the IP's, not an API key's.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any, Iterable, NamedTuple

import msgspec

PROVIDER = "binance"
MS = 1_000_000  # nanoseconds per millisecond
CHANNELS = {"depth": "depth@100ms", "trade": "trade", "bookTicker": "bookTicker"}
"""Our channel names -> their stream suffixes."""
MAX_STREAMS = 1024
"""Streams per connection."""
MAX_MESSAGES_PER_SECOND = 5
"""Incoming messages per second per connection (SUBSCRIBE, pings, pongs)."""
MAX_DEPTH_LIMIT = 5000
DEPTH_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))
"""REST /api/v3/depth request weight: (highest limit, weight)."""
WEIGHT_PER_MINUTE = 6000
USED_WEIGHT = "x-mbx-used-weight-1m"
RETRY_AFTER = "retry-after"
REFUSALS = {429: "too much request weight", 418: "IP banned"}
"""The statuses that refuse a request for its weight, and what each means."""
DEFAULT_RETRY_AFTER = {429: 60.0, 418: 120.0}
"""Seconds to wait when a refusal says nothing (a minute of weight; the shortest ban)."""
MAX_RETRY_AFTER = 3 * 86_400.0
"""The longest ban Binance documents: no Retry-After holds longer."""
ERROR_CODES = {0: "Unknown property", 1: "Invalid value type", 2: "Invalid request",
               3: "Invalid JSON"}
SHUTDOWN = "serverShutdown"


class Malformed(ValueError):
    """Input that does not follow the protocol. `kind` names what was wrong (frame, depth,
    trade, ticker, snapshot, level) for a counter; `symbol` the venue symbol if known."""

    def __init__(self, kind: str, reason: str, symbol: str = "") -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
        self.symbol = symbol


# --- streams -------------------------------------------------------------------------------

def stream_name(native: str, channel: str) -> str:
    """("BTCUSDT", "depth") -> "btcusdt@depth@100ms"."""
    return f"{native.lower()}@{CHANNELS[channel]}"


def split_stream(name: str) -> tuple[str, str]:
    """"btcusdt@depth@100ms" -> ("BTCUSDT", "depth"). Raises Malformed."""
    lower, at, suffix = name.partition("@")
    for channel, known in CHANNELS.items():
        if at and lower and suffix == known and lower.isalnum():
            return lower.upper(), channel
    raise Malformed("stream", f"not a stream we know: {name[:80]!r}")


def depth_weight(limit: int) -> int:
    for highest, weight in DEPTH_WEIGHTS:
        if limit <= highest:
            return weight
    raise ValueError(f"depth limit over {MAX_DEPTH_LIMIT}: {limit}")


# --- requests (client -> server) -----------------------------------------------------------

class Request(msgspec.Struct):
    method: str
    params: list[str] = []
    id: int | str | None = None


def subscribe_request(streams: Iterable[str], request_id: int,
                      method: str = "SUBSCRIBE") -> str:
    return json.dumps({"method": method, "params": list(streams), "id": request_id})


def decode_request(data: str | bytes) -> Request:
    """A client's request; Malformed("frame") if not JSON, ("request") if not a request."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Malformed("frame", f"Invalid JSON: {exc}") from None
    try:
        return msgspec.convert(raw, Request)
    except msgspec.ValidationError as exc:
        raise Malformed("request", f"Invalid request: {exc}") from None


# --- server messages ----------------------------------------------------------------------

Level = tuple[str, str]
Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // MS)]
Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class DepthUpdate(msgspec.Struct):
    s: str
    U: Id
    u: Id
    b: list[Level]
    a: list[Level]
    E: Millis = 0
    e: str = "depthUpdate"


Price = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Size = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]


class Depth(msgspec.Struct):
    """A depthUpdate with its levels as numbers: what the protocol applies."""

    s: str
    U: Id
    u: Id
    b: list[tuple[Price, Size]]
    a: list[tuple[Price, Size]]
    E: Millis = 0
    e: str = "depthUpdate"


class DepthFrame(msgspec.Struct):
    """A combined-stream frame of a depthUpdate, as decode_depth_frame takes it."""

    stream: str
    data: Depth
    event: Any = None


class WireTrade(msgspec.Struct):
    s: str
    t: Id
    p: str
    q: str
    T: Millis
    m: bool
    E: Millis = 0
    M: bool = True
    e: str = "trade"


class BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    u: Id = 0


class Result(msgspec.Struct):
    """The answer to a request: {"result": null, "id": N}."""

    id: int | str | None
    result: Any = None


class Error(msgspec.Struct):
    code: int
    msg: str = ""
    id: int | str | None = None


class Shutdown(msgspec.Struct):
    E: int = 0


class Data(NamedTuple):
    """A data message: its stream (or "" on a raw connection) and its still raw payload."""

    stream: str
    payload: dict[str, Any]


Message = Data | Result | Error | Shutdown


_depth_frame = msgspec.json.Decoder(DepthFrame, strict=False)
_STREAM_HEAD = 64
"""Bytes at a combined-stream frame's start that hold its stream's name ({"stream":"...)."""


def decode_depth_frame(data: bytes) -> DepthFrame | None:
    """The hot path: a combined-stream depthUpdate, its levels parsed by msgspec straight from
    the JSON (strict=False: decimal strings into floats); None for any other frame or anything
    amiss in it, for decode_message and decode_depth to tell what it is. What it takes, those
    take the same way (and a little more: a number where Binance sends a string)."""
    if data.find(b"@depth", 0, _STREAM_HEAD) < 0:  # a trade's, a ticker's...: not tried
        return None  # (a failed typed decode would cost ~0.8 us a frame)
    try:
        frame = _depth_frame.decode(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    depth = frame.data
    if frame.event is not None or depth.e != "depthUpdate" or depth.U > depth.u:
        return None
    return frame


def decode_message(data: str | bytes) -> Message:
    """One server frame. Raises Malformed("frame")."""
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise Malformed("frame", f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise Malformed("frame", f"not a JSON object but {type(raw).__name__}")
    if isinstance(raw.get("event"), dict):  # {"event": {"e": "serverShutdown", ...}}
        raw = raw["event"]
    stream, payload = raw.get("stream"), raw.get("data")
    if isinstance(stream, str) and isinstance(payload, dict):
        return Shutdown(_int(payload.get("E"))) if payload.get("e") == SHUTDOWN else \
            Data(stream, payload)
    if raw.get("e") == SHUTDOWN:
        return Shutdown(_int(raw.get("E")))
    if "result" in raw and "id" in raw:
        return _convert(raw, Result, "frame")
    if "code" in raw:
        return _convert(raw, Error, "frame")
    if "e" in raw or ("u" in raw and "s" in raw):
        return Data("", raw)
    raise Malformed("frame", f"an object we do not know: {str(raw)[:120]}")


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _convert(raw: Any, shape: type, kind: str) -> Any:
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        symbol = raw.get("s") if isinstance(raw, dict) else None
        raise Malformed(kind, str(exc), symbol if isinstance(symbol, str) else "") from None


def channel_of(message: Data) -> str:
    """The channel of a data message: from its stream, else from its shape."""
    if message.stream:
        return split_stream(message.stream)[1]
    event = message.payload.get("e")
    if event == "depthUpdate":
        return "depth"
    if event == "trade":
        return "trade"
    if event is None and "u" in message.payload:
        return "bookTicker"
    raise Malformed("frame", f"an event we do not know: {str(event)[:40]!r}")


def decode_depth(payload: dict[str, Any]) -> Depth:
    """A depthUpdate's payload; Malformed("depth") or ("level")."""
    update = _convert(payload, DepthUpdate, "depth")
    if update.U > update.u:
        raise Malformed("depth", f"U {update.U} > u {update.u}", update.s)
    return Depth(update.s, update.U, update.u, parse_levels(update.b, update.s),
                 parse_levels(update.a, update.s), update.E)


def decode_trade(payload: dict[str, Any]) -> WireTrade:
    return _convert(payload, WireTrade, "trade")


def decode_ticker(payload: dict[str, Any]) -> BookTicker:
    return _convert(payload, BookTicker, "ticker")


# --- REST ---------------------------------------------------------------------------------

class DepthSnapshot(msgspec.Struct):
    lastUpdateId: Id
    bids: list[Level]
    asks: list[Level]


def decode_snapshot(body: bytes, symbol: str = "") -> DepthSnapshot:
    try:
        return msgspec.json.decode(body, type=DepthSnapshot)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise Malformed("snapshot", str(exc)[:200], symbol) from None


def header_count(text: str, name: str) -> int:
    """A header's whole number (Retry-After's seconds, a used weight); Malformed("header")."""
    if not (text.isascii() and text.isdigit()):
        raise Malformed("header", f"{name} is not a whole number: {text[:40]!r}")
    return int(text) if len(text) <= 18 else 10**18  # huge either way, never a long parse


def encode(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"))


# --- numbers ------------------------------------------------------------------------------

def parse_levels(levels: list[Level], symbol: str = "") -> list[tuple[float, float]]:
    """[["4.00000000", "431.0"]] -> [(4.0, 431.0)]; Malformed("level") for a price that does
    not parse or is not > 0, or a size that is negative, NaN or infinite."""
    out = []
    for price_text, size_text in levels:
        price, size = _number(price_text), _number(size_text)
        if not price > 0 or not math.isfinite(price):
            raise Malformed("level", f"bad price {price_text[:40]!r}", symbol)
        if not size >= 0 or not math.isfinite(size):
            raise Malformed("level", f"bad size {size_text[:40]!r} at {price_text[:40]}", symbol)
        out.append((price, size))
    return out


def parse_price(text: str, what: str, symbol: str = "") -> float:
    value = _number(text)
    if not value >= 0 or not math.isfinite(value):
        raise Malformed(what, f"bad number {text[:40]!r}", symbol)
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
