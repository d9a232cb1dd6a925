"""The Polygon.io stocks WebSocket protocol, sans-I/O: frames in, normalized events out.

Wire facts (docs and the official client, polygon-api-client / its successor `massive`):
every server frame is a JSON array of objects, each tagged by `ev`. On open the server sends
status `connected`; the client sends `{"action":"auth","params":KEY}` and gets `auth_success` or
`auth_failed`; then `{"action":"subscribe","params":"T.AAPL,Q.*"}` (unsubscribe the same), each
topic acknowledged by its own status `success` ("subscribed to: T.AAPL"). Data: trades `T`,
quotes `Q`, per-second `A` and per-minute `AM` aggregates; all their timestamps are Unix
milliseconds. Exchange ids and condition codes are integers on the wire, strings on the bus.

`PolygonProtocol` is the client side as a state machine for handlers.common's reconnecting
client. Nothing here touches a socket: the simulator and the handler are thin I/O around it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any, Callable, Iterable

import msgspec

from bus.events import Bar, Event, Quote, Trade
from handlers.common.protocol import Change, ClientProtocol, Output

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


def decode_frame(data: str | bytes) -> list[Any]:
    """A server frame -> its list of messages (each still raw). Raises Malformed."""
    try:
        messages = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise Malformed("frame", f"not JSON: {exc}") from None
    if not isinstance(messages, list):
        raise Malformed("frame", f"not a JSON array but {type(messages).__name__}")
    return messages


# --- wire messages, validated ---------------------------------------------------------------

Symbol = Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^|]+$")]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
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


def _convert(raw: Any, kind: str, shape: type) -> Any:
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        raise Malformed(kind, str(exc)) from None


# --- normalizers: one wire message -> one bus event ---------------------------------------

def normalize_trade(raw: Any, ts_recv: int) -> Trade:
    m: WireTrade = _convert(raw, "T", WireTrade)
    return Trade(
        provider=PROVIDER, symbol=m.sym, ts_event=m.t * MS, ts_recv=ts_recv, price=m.p,
        size=m.s, trade_id=m.i, exchange=str(m.x), conditions=[str(c) for c in m.c],
    )


def normalize_quote(raw: Any, ts_recv: int) -> Quote:
    """Sizes stay as the provider sends them (round lots)."""
    m: WireQuote = _convert(raw, "Q", WireQuote)
    return Quote(
        provider=PROVIDER, symbol=m.sym, ts_event=m.t * MS, ts_recv=ts_recv, bid_price=m.bp,
        bid_size=m.bs, ask_price=m.ap, ask_size=m.as_, bid_exchange=str(m.bx),
        ask_exchange=str(m.ax),
    )


def normalize_bar(raw: Any, ts_recv: int) -> Bar:
    """`A` (one second) or `AM` (one minute); ts_event is the window start `s`."""
    channel = raw.get("ev") if isinstance(raw, dict) else None
    if channel not in BAR_SECONDS:
        raise Malformed("aggregate", f"ev must be one of {sorted(BAR_SECONDS)}: {channel!r}")
    m: WireAggregate = _convert(raw, channel, WireAggregate)
    return Bar(
        provider=PROVIDER, symbol=m.sym, ts_event=m.s * MS, ts_recv=ts_recv,
        interval_s=BAR_SECONDS[channel], open=m.o, high=m.h, low=m.l, close=m.c, volume=m.v,
        vwap=m.vw,
    )


NORMALIZERS: dict[str, Callable[[Any, int], Event]] = {
    "T": normalize_trade, "Q": normalize_quote, "A": normalize_bar, "AM": normalize_bar,
}


def event_type(raw: Any) -> str:
    """The `ev` tag of a raw message. Raises Malformed."""
    ev = raw.get("ev") if isinstance(raw, dict) else None
    if not isinstance(ev, str):
        raise Malformed("message", f"not an object with a string `ev`: {raw!r:.200}")
    return ev


def decode_status(raw: Any) -> WireStatus:
    return _convert(raw, "status", WireStatus)


# --- the client side: one connection's state machine ----------------------------------------

class PolygonProtocol(ClientProtocol):
    """connected -> (send auth) -> authenticated -> (send subscribe) -> subscribed, once every
    topic is acknowledged. auth_failed, auth_timeout and max_connections are errors that end
    the connection. Bad input is counted in `malformed_<kind>` (unknown event types in
    `unknown_ev`), reported once per kind, and skipped."""

    provider = PROVIDER

    def __init__(self, key: str, topics: list[str], counters: Counter | None = None) -> None:
        super().__init__(counters)
        self.key = key
        self.topics = list(topics)
        self.pending: set[str] = set()
        self._reported: set[str] = set()

    def start(self) -> Output:
        self.pending = set()
        return Output()  # the server speaks first: `connected`

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        try:
            messages = decode_frame(frame)
        except Malformed as exc:
            return Output(problem=self._malformed(exc))
        events: list[Event] = []
        replies: list[str] = []
        changes: list[Change] = []
        problems: list[str] = []
        close = False
        for raw in messages:
            try:
                ev = event_type(raw)
                normalize = NORMALIZERS.get(ev)
                if normalize is not None:
                    events.append(normalize(raw, ts_recv))
                elif ev == "status":
                    close |= self._on_status(decode_status(raw), replies, changes)
                else:
                    unknown = f"unknown event type {ev[:20]!r}"
                    problems.append(self._count_once("unknown_ev", unknown))
            except Malformed as exc:
                problems.append(self._malformed(exc))
        return Output(events, replies, changes, "; ".join(filter(None, problems)), close)

    def _on_status(self, message: WireStatus, replies: list[str], changes: list[Change]) -> bool:
        """Act on a status message; True if it ends the connection."""
        state = message.status
        if state == CONNECTED:
            changes.append(Change("connected"))
            replies.append(auth_request(self.key))
        elif state == AUTH_SUCCESS:
            changes.append(Change("authenticated"))
            self.pending = set(self.topics)
            replies.append(subscribe_request(self.topics))
        elif state == SUCCESS:
            self._acknowledged(message.message, changes)
        else:  # auth_failed, auth_timeout, max_connections, error, or one we do not know
            changes.append(Change(ERROR, message=f"{state}: {message.message}"[:300]))
        return state in FATAL

    def _acknowledged(self, text: str, changes: list[Change]) -> None:
        """"subscribed to: T.AAPL" (several topics may share one ack, comma-separated)."""
        verb, _, topics = text.partition(": ")
        if verb != "subscribed to" or not self.pending:
            return
        self.pending.difference_update(t.strip() for t in topics.split(","))
        if not self.pending:
            changes.append(Change("subscribed", message=f"{len(self.topics)} topics"))

    def _malformed(self, exc: Malformed) -> str:
        return self._count_once(f"malformed_{exc.kind}", str(exc)[:300])

    def _count_once(self, counter: str, problem: str) -> str:
        """Count every occurrence; describe only the first of each kind."""
        self.counters[counter] += 1
        if counter in self._reported:
            return ""
        self._reported.add(counter)
        return problem
