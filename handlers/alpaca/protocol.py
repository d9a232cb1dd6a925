"""Alpaca market-data stream v2, client side: a pure state machine (no sockets, no asyncio).

Per connection: wait for `[{"T":"success","msg":"connected"}]`, send the auth message, wait for
"authenticated", send one subscribe message for the configured channels and symbols, wait for
the `subscription` reply; trades (`T:"t"`) and quotes (`T:"q"`) become bus Trade and Quote
events whenever they come. Each step is reported as a Change (connected, authenticated,
subscribed); a provider error as Change("error", code, msg), and the errors after which the
connection is useless (FATAL_ERRORS) also ask the client to close it.

Bad input never raises: a frame or message that cannot be decoded is skipped and counted
(bad_input{reason="malformed"}); known message types this handler does not normalize (bars,
statuses, ...) are counted as bad_input{reason="unhandled"}. Values are checked by the rules of
handlers.common.values (most of them by the wire structs' constraints, in msgspec's C decoder:
a frame that fails is decoded again message by message, and only the bad messages are
dropped): a message with a NaN or infinite number, a trade price <= 0, a negative size, a quote
price 0 with a size, an empty symbol, a time of 0, or a symbol the configuration does not
subscribe on that channel ("*" subscribes to all) is dropped and counted under its reason.
A locked or crossed quote is published and counted (quotes_crossed{provider="alpaca"}).
(A symbol that cannot be part of a topic is the client's to drop: it is caught when
published.)
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import msgspec

from tickmesh.bus.events import Event, Quote, Trade
from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.wire import QuoteMessage, TradeMessage
from tickmesh.handlers.common import values
from tickmesh.handlers.common.protocol import Change, ClientProtocol, Output

PROVIDER = "alpaca"
CHANNELS = ("trades", "quotes")
FATAL_ERRORS = frozenset({401, 402, 404, 406, 407, 409, 411})
"""After these the server closes the connection or serves nothing more on it: reconnect."""

_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
"""RecursionError: a frame nested deeper than the decoder goes (a hostile server's)."""


class AlpacaProtocol(ClientProtocol):
    provider = PROVIDER

    def __init__(self, *, key: str, secret: str, symbols: Sequence[str],
                 channels: Sequence[str] = CHANNELS, encoding: str = wire.MSGPACK,
                 counters: Counter | None = None) -> None:
        super().__init__(counters)
        unknown = set(channels) - set(CHANNELS)
        if unknown or not channels:
            raise ValueError(f"channels must be some of {CHANNELS}, got {list(channels)}")
        if encoding not in wire.ENCODINGS:
            raise ValueError(f"encoding must be one of {wire.ENCODINGS}, got {encoding!r}")
        self.encoding = encoding
        self._auth_frame = wire.encode_client(wire.auth_message(key, secret), encoding)
        self._subscribe_frame = wire.encode_client(
            wire.subscribe_message({channel: list(symbols) for channel in channels}), encoding)
        self._decoder = wire.FrameDecoder(encoding)
        everything = "*" in symbols  # "*" subscribes to every symbol
        self._trade_symbols = None if everything else \
            frozenset(symbols if "trades" in channels else ())
        self._quote_symbols = None if everything else \
            frozenset(symbols if "quotes" in channels else ())
        self.stage = "connecting"
        self.subscription = wire.Subscription()

    def headers(self) -> dict[str, str]:
        if self.encoding == wire.MSGPACK:
            return {"Content-Type": wire.MSGPACK_CONTENT_TYPE}
        return {}

    def start(self) -> Output:
        self.stage = "connecting"
        self.subscription = wire.Subscription()
        return Output()

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        try:
            messages = self._decoder.decode(frame)  # checks the values too (wire.TradeMessage)
            problem = ""
        except _DECODE_ERRORS:
            messages, problem = self._salvage(frame)
        events: list[Event] = []
        control = []
        time_to_ns = wire.time_to_ns
        trades, quotes = self._trade_symbols, self._quote_symbols
        for m in messages:  # the hot loop: normalize inline
            kind = type(m)
            try:
                if kind is TradeMessage:
                    if trades is not None and m.symbol not in trades:
                        problem = self._drop(values.UNSUBSCRIBED, m)
                        continue
                    events.append(Trade(
                        provider=PROVIDER, symbol=m.symbol, ts_event=time_to_ns(m.time),
                        ts_recv=ts_recv, price=m.price, size=m.size, trade_id=str(m.trade_id),
                        exchange=m.exchange, conditions=m.conditions,
                    ))
                elif kind is QuoteMessage:
                    if quotes is not None and m.symbol not in quotes:
                        problem = self._drop(values.UNSUBSCRIBED, m)
                        continue
                    bid, ask = m.bid_price, m.ask_price
                    if (not bid and m.bid_size) or (not ask and m.ask_size):
                        problem = self._drop(values.BAD_PRICE, m)  # a price 0 with a size
                        continue
                    if 0 < ask <= bid:
                        self.counters["quotes_crossed", PROVIDER] += 1
                    events.append(Quote(
                        provider=PROVIDER, symbol=m.symbol, ts_event=time_to_ns(m.time),
                        ts_recv=ts_recv, bid_price=bid, bid_size=m.bid_size,
                        ask_price=ask, ask_size=m.ask_size,
                        bid_exchange=m.bid_exchange, ask_exchange=m.ask_exchange,
                    ))
                else:
                    control.append(m)
            except ValueError as exc:  # the time
                self.counters["bad_input", values.BAD_TIME] += 1
                problem = f"{kind.__name__}: {exc}"
        if control:
            return self._control(events, control, problem)
        return Output(events, problem=problem)

    def _drop(self, reason: str, message: TradeMessage | QuoteMessage) -> str:
        self.counters["bad_input", reason] += 1
        return f"{type(message).__name__} of {message.symbol!r}: {reason}"

    def _salvage(self, frame: bytes) -> tuple[list, str]:
        try:
            messages, dropped = self._decoder.salvage(frame)
        except (*_DECODE_ERRORS, ValueError) as exc:
            self.counters["bad_input", "malformed"] += 1
            return [], f"undecodable frame ({exc}): {frame[:80]!r}"
        for reason in dropped:
            self.counters["bad_input", reason] += 1
        bad = [reason for reason in dropped if reason != "unhandled"]
        return messages, f"{len(bad)} message(s) dropped from a frame: {', '.join(bad)}" \
            if bad else ""

    def _control(self, events: list[Event], messages: list, problem: str) -> Output:
        replies: list[bytes | str] = []
        changes: list[Change] = []
        close = False
        for message in messages:
            if isinstance(message, wire.Error):
                changes.append(Change("error", message.code, message.msg))
                close = close or message.code in FATAL_ERRORS
            elif isinstance(message, wire.Subscription):
                self.stage = "subscribed"
                self.subscription = message
                changes.append(Change("subscribed", message=_describe(message)))
            elif message == wire.Success("connected") and self.stage == "connecting":
                self.stage = "connected"
                changes.append(Change("connected"))
                replies.append(self._auth_frame)
            elif message == wire.Success("authenticated") and self.stage == "connected":
                self.stage = "authenticated"
                changes.append(Change("authenticated"))
                replies.append(self._subscribe_frame)
            else:
                self.counters["bad_input", "unexpected"] += 1
                problem = f"unexpected {message!r} while {self.stage}"
        return Output(events, replies, changes, problem, close)


def _describe(subscription: wire.Subscription) -> str:
    """e.g. 'trades: AAPL, MSFT; quotes: 120 symbols' for the channels that have any."""
    parts = []
    for channel in wire.STOCK_CHANNELS:
        symbols = getattr(subscription, channel)
        if symbols:
            shown = ", ".join(symbols) if len(symbols) <= 5 else f"{len(symbols)} symbols"
            parts.append(f"{channel}: {shown}")
    return "; ".join(parts) or "nothing"
