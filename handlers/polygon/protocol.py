"""The Polygon.io stocks WebSocket, client side, sans-I/O: frames in, normalized events out.

`PolygonProtocol` is the client's state machine for handlers.common's reconnecting client;
the normalizers turn one wire message (handlers.polygon.wire) into one bus event. Nothing here
touches a socket.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from tickmesh.bus.events import Bar, Event, Quote, Trade
from tickmesh.handlers.common import values
from tickmesh.handlers.common.protocol import Change, ClientProtocol, Output
from tickmesh.handlers.polygon.wire import (
    AUTH_SUCCESS, BAR_SECONDS, CONNECTED, ERROR, FATAL, MS, PROVIDER, SUCCESS, BadValue, Malformed,
    WireAggregate, WireQuote, WireStatus, WireTrade, convert, auth_request, decode_frame, decode_status,
    event_type, split_topic, subscribe_request,
)


# --- normalizers: one wire message -> one bus event ---------------------------------------

def normalize_trade(raw: Any, ts_recv: int) -> Trade:
    m: WireTrade = convert(raw, "T", WireTrade)
    _check(values.trade_problem(m.p, m.s), m.t, "T", m.sym)
    return Trade(
        provider=PROVIDER, symbol=m.sym, ts_event=m.t * MS, ts_recv=ts_recv, price=m.p,
        size=m.s, trade_id=m.i, exchange=str(m.x), conditions=[str(c) for c in m.c],
    )


def normalize_quote(raw: Any, ts_recv: int) -> Quote:
    """Sizes stay as the provider sends them (round lots). A side may be empty (0 and 0)."""
    m: WireQuote = convert(raw, "Q", WireQuote)
    _check(values.quote_problem(m.bp, m.bs, m.ap, m.as_), m.t, "Q", m.sym)
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
    m: WireAggregate = convert(raw, channel, WireAggregate)
    _check(values.bar_problem(m.o, m.h, m.l, m.c, m.v, m.vw), m.s, channel, m.sym)
    return Bar(
        provider=PROVIDER, symbol=m.sym, ts_event=m.s * MS, ts_recv=ts_recv,
        interval_s=BAR_SECONDS[channel], open=m.o, high=m.h, low=m.l, close=m.c, volume=m.v,
        vwap=m.vw,
    )


def _check(problem: str, millis: int, channel: str, symbol: str) -> None:
    """Raise BadValue for a value no market has (handlers.common.values), or a time of 0."""
    if not problem and millis <= 0:
        problem = values.BAD_TIME
    if problem:
        raise BadValue(problem, f"{channel} of {symbol}: {problem}")


NORMALIZERS: dict[str, Callable[[Any, int], Event]] = {
    "T": normalize_trade, "Q": normalize_quote, "A": normalize_bar, "AM": normalize_bar,
}


# --- the client side: one connection's state machine ----------------------------------------

class PolygonProtocol(ClientProtocol):
    """connected -> (send auth) -> authenticated -> (send subscribe) -> subscribed, once every
    topic is acknowledged. auth_failed, auth_timeout and max_connections are errors that end
    the connection. Bad input is counted in bad_input{reason="malformed_<kind>"} (unknown event
    types in `unknown_ev`), values no market has under the rules of handlers.common.values
    (`non_finite`, `bad_price`, `bad_size`, `bad_bar`, `bad_time`), data for a symbol no topic
    subscribed in `unsubscribed`; each is reported once per reason, and skipped, and the rest
    of its frame is kept. A locked or crossed quote is published and counted
    (quotes_crossed{provider="polygon"})."""

    provider = PROVIDER

    def __init__(self, key: str, topics: list[str], counters: Counter | None = None) -> None:
        super().__init__(counters)
        self.key = key
        self.topics = list(topics)
        self._wanted: dict[str, set[str] | None] = {}  # channel -> symbols (None: "*", all)
        for topic in self.topics:
            channel, symbol = split_topic(topic)
            wanted = self._wanted.setdefault(channel, set())
            if symbol == "*" or wanted is None:
                self._wanted[channel] = None
            else:
                wanted.add(symbol)
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
                    event = normalize(raw, ts_recv)
                    wanted = self._wanted.get(ev, ())
                    if wanted is not None and event.symbol not in wanted:
                        problems.append(self._count_once(
                            values.UNSUBSCRIBED, f"{ev} of {event.symbol[:20]!r}, never subscribed"))
                        continue
                    if type(event) is Quote and values.crossed(event.bid_price, event.ask_price):
                        self.counters["quotes_crossed", PROVIDER] += 1
                    events.append(event)
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
        return self._count_once(exc.counter, str(exc)[:300])

    def _count_once(self, reason: str, problem: str) -> str:
        """Count every occurrence (bad_input{reason}); describe only the first of each kind."""
        self.counters["bad_input", reason] += 1
        if reason in self._reported:
            return ""
        self._reported.add(reason)
        return problem
