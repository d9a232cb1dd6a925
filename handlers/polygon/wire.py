"""The Polygon.io stocks WebSocket on the wire, both directions: the messages, their
validation and the protocol's vocabulary, shared by the client protocol
(handlers.polygon.protocol) and the simulator (handlers.polygon.sim).

Wire facts (docs and the official client, polygon-api-client / its successor `massive`):
every server frame is a JSON array of objects, each tagged by `ev`. On open the server sends
status `connected`; the client sends `{"action":"auth","params":KEY}` and gets `auth_success` or
`auth_failed`; then `{"action":"subscribe","params":"T.AAPL,Q.*"}` (unsubscribe the same), each
topic acknowledged by its own status `success` ("subscribed to: T.AAPL"). Data: trades `T`,
quotes `Q`, per-second `A` and per-minute `AM` aggregates; all their timestamps are Unix
milliseconds. Exchange ids and condition codes are integers on the wire, strings on the bus.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Iterable, NamedTuple

import msgspec

from tickmesh.handlers.common import values


PROVIDER = "polygon"
CHANNELS = ("T", "Q", "A", "AM")
BAR_SECONDS = {"A": 1, "AM": 60}
MS = 1_000_000  # nanoseconds per millisecond

# Values of `status` in {"ev":"status"} messages.
CONNECTED = "connected"
AUTH_SUCCESS = "auth_success"
AUTH_FAILED = "auth_failed"
AUTH_TIMEOUT = "auth_timeout"
MAX_CONNECTIONS = "max_connections"
SUCCESS = "success"
ERROR = "error"
FATAL = (AUTH_FAILED, AUTH_TIMEOUT, MAX_CONNECTIONS)
"""Statuses after which the server closes the connection."""

CLOSE_POLICY_VIOLATION = 1008
"""The close code after max_connections, auth_failed and auth_timeout."""


class Malformed(ValueError):
    """A frame or message that does not follow the protocol. `kind` names what was wrong
    (for a counter and a log line); the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason

    @property
    def counter(self) -> str:
        """Its bad_input reason."""
        return f"malformed_{self.kind}"


class BadValue(Malformed):
    """A message of the right shape with values no market has (handlers.common.values):
    counted under the rule's own reason (non_finite, bad_price, ...)."""

    @property
    def counter(self) -> str:
        return self.kind


# --- the vocabulary both sides speak -------------------------------------------------------

def encode_frame(messages: list[dict[str, Any]]) -> str:
    """A server frame: always a JSON array, even for one message."""
    return json.dumps(messages, separators=(",", ":"))


def status(state: str, message: str) -> dict[str, Any]:
    return {"ev": "status", "status": state, "message": message}


def auth_request(key: str) -> str:
    return json.dumps({"action": "auth", "params": key})


def subscribe_request(topics: Iterable[str], action: str = "subscribe") -> str:
    """`{"action":"subscribe","params":"T.AAPL,Q.AAPL"}`; action may be "unsubscribe"."""
    return json.dumps({"action": action, "params": ",".join(topics)})


def topics_for(channels: Iterable[str], symbols: Iterable[str]) -> list[str]:
    """Every channel for every symbol: ["T","Q"] x ["AAPL"] -> ["T.AAPL", "Q.AAPL"]."""
    symbols = list(symbols)
    return [f"{channel}.{symbol}" for channel in channels for symbol in symbols]


def split_topic(topic: str) -> tuple[str, str]:
    """"T.BRK.B" -> ("T", "BRK.B"): the channel ends at the first dot. Raises Malformed."""
    channel, dot, symbol = topic.strip().partition(".")
    if not dot or channel not in CHANNELS or not symbol or "|" in symbol:
        raise Malformed("topic", f"not CHANNEL.SYMBOL with a channel in {CHANNELS}: {topic!r}")
    return channel, symbol


class Action(msgspec.Struct):
    """A client request: auth, subscribe or unsubscribe."""

    action: str
    params: str


def decode_action(data: str | bytes) -> Action:
    try:
        return msgspec.json.decode(data, type=Action)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Malformed("action", str(exc)) from None


class Unreadable(NamedTuple):
    """A message of a frame that could not be read at all (its event type is unknown)."""

    text: bytes


def decode_frame(data: str | bytes) -> list[Any]:
    """A server frame -> its list of messages (each still raw). Raises Malformed.

    A frame strict JSON cannot read is read message by message (values.split_json_array), each
    by values.read_json: NaN, Infinity and -Infinity become those floats and 1e999 ±inf, for
    the normalizers to refuse as non_finite, while the other messages of the frame are kept;
    a message that cannot be read even so is an `Unreadable` (and a frame of nothing else is
    Malformed)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    try:
        messages = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        try:
            elements = values.split_json_array(data)
        except ValueError:
            raise Malformed("frame", f"not JSON: {exc}") from None
        messages = [_read(element) for element in elements]
        if all(isinstance(message, Unreadable) for message in messages):
            raise Malformed("frame", f"not JSON: {exc}") from None
        return messages
    if not isinstance(messages, list):
        raise Malformed("frame", f"not a JSON array but {type(messages).__name__}")
    return messages


def _read(element: bytes) -> Any:
    try:
        return values.read_json(element)
    except ValueError:
        return Unreadable(element[:200])


# --- wire messages, validated ---------------------------------------------------------------

Symbol = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^|]+$")]
NonNegative = float
"""Any float: the normalizers check the values (handlers.common.values), to count each rule."""
Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // MS)]
Code = Annotated[int, msgspec.Meta(ge=0)]


class WireStatus(msgspec.Struct):
    status: str
    message: str = ""


class WireTrade(msgspec.Struct):
    sym: Symbol
    p: NonNegative
    s: NonNegative
    t: Millis
    x: Code = 0
    i: str = ""
    c: list[Code] = []
    z: Code = 0
    q: int = 0


class WireQuote(msgspec.Struct):
    sym: Symbol
    bp: NonNegative
    bs: NonNegative
    ap: NonNegative
    as_: NonNegative = msgspec.field(name="as")
    t: Millis
    bx: Code = 0
    ax: Code = 0
    c: Code = 0
    i: list[Code] = []
    z: Code = 0
    q: int = 0


class WireAggregate(msgspec.Struct):
    sym: Symbol
    o: NonNegative
    h: NonNegative
    l: NonNegative  # noqa: E741 - the wire name
    c: NonNegative
    v: NonNegative
    s: Millis
    e: Millis
    vw: NonNegative = 0.0
    av: NonNegative = 0.0
    op: NonNegative = 0.0
    a: NonNegative = 0.0
    z: NonNegative = 0.0


def convert(raw: Any, kind: str, shape: type) -> Any:
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        raise Malformed(kind, str(exc)) from None


def event_type(raw: Any) -> str:
    """The `ev` tag of a raw message. Raises Malformed."""
    ev = raw.get("ev") if isinstance(raw, dict) else None
    if not isinstance(ev, str):
        raise Malformed("message", f"not an object with a string `ev`: {raw!r:.200}")
    return ev


def decode_status(raw: Any) -> WireStatus:
    return convert(raw, "status", WireStatus)
