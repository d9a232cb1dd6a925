"""Alpaca market-data stream v2, server side: one connection's session as a pure state machine,
for the simulator (handlers.alpaca.sim.server does the I/O).

What the real server does, and so this session:
- on connect `[{"T":"success","msg":"connected"}]`; credentials in the upgrade headers
  (APCA-API-KEY-ID / APCA-API-SECRET-KEY) authenticate right away;
- `{"action":"auth",...}` -> "authenticated", or error 402 (wrong keys; connection closed),
  403 (already authenticated), 406 (connection limit; the connection stays open and the client
  may retry), 409 (feed not in the account's subscription; connection closed);
- no auth within the timeout -> 404 and close (the I/O layer keeps the clock: `timed_out`);
- subscribe/unsubscribe before auth -> 401; a channel of another stream (orderbooks, news) ->
  410; anything unreadable -> 400; more symbols than the limit -> 405 and the previous
  subscription stays in force; otherwise the `subscription` reply with the full current set,
  corrections and cancelErrors following trades.
Each reply message goes out in a frame of its own (clients expect exactly one element).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from tickmesh.handlers.alpaca import wire


@dataclass(frozen=True)
class Account:
    """What the simulated account may do. Empty key: any credentials are accepted; empty feeds:
    every feed; 0 limits: none."""

    key: str = ""
    secret: str = ""
    feeds: tuple[str, ...] = ()
    symbol_limit: int = 0


class Registry:
    """The authenticated connections of one simulator, for the connection limit (0: none)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.active = 0

    def admit(self) -> bool:
        if self.limit and self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active -= 1


class Reply(NamedTuple):
    messages: list[Any]
    close: bool = False


CLOSING_ERRORS = frozenset({402, 404, 407, 409})
"""The errors after which the real server closes the connection."""


class ServerSession:
    def __init__(self, account: Account, registry: Registry, feed: str) -> None:
        self.account = account
        self.registry = registry
        self.feed = feed
        self.authenticated = False
        self.channels: dict[str, dict[str, None]] = {c: {} for c in wire.STOCK_CHANNELS}

    def open(self, key: str | None = None, secret: str | None = None) -> Reply:
        """The connection is open; key and secret are the upgrade headers' credentials, if any."""
        welcome = [wire.Success("connected")]
        if key is None and secret is None:
            return Reply(welcome)
        reply = self._authenticate(key or "", secret or "")
        return Reply(welcome + reply.messages, reply.close)

    def timed_out(self) -> Reply:
        return self.error(404)

    def error(self, code: int) -> Reply:
        """Error `code` (of wire.ERRORS), closing the connection if the real server would."""
        return Reply([wire.error(code)], close=code in CLOSING_ERRORS)

    def close(self) -> None:
        """The connection is gone: free its place under the connection limit."""
        if self.authenticated:
            self.authenticated = False
            self.registry.release()

    def receive(self, data: bytes | str) -> Reply:
        """One client message (text frames are JSON, binary frames msgpack)."""
        try:
            message = wire.decode_client(data)
        except msgspec.DecodeError:
            return Reply([wire.error(400)])
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            key, secret = message.get("key"), message.get("secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                return Reply([wire.error(400)])
            return self._authenticate(key, secret)
        if action in ("subscribe", "unsubscribe"):
            return self._change(action, message)
        return Reply([wire.error(400)])

    def wants(self, channel: str, symbol: str) -> bool:
        symbols = self.channels.get(channel)
        return bool(symbols) and (symbol in symbols or "*" in symbols)  # type: ignore[operator]

    def subscription(self) -> wire.Subscription:
        current = {channel: list(symbols) for channel, symbols in self.channels.items()}
        followers = {channel: list(current["trades"]) for channel in wire.TRADE_FOLLOWERS}
        return wire.Subscription(**current, **followers)

    def _authenticate(self, key: str, secret: str) -> Reply:
        account = self.account
        if self.authenticated:
            return Reply([wire.error(403)])
        if account.key and (key, secret) != (account.key, account.secret):
            return self.error(402)
        if account.feeds and self.feed not in account.feeds:
            return self.error(409)
        if not self.registry.admit():
            return Reply([wire.error(406)])
        self.authenticated = True
        return Reply([wire.Success("authenticated")])

    def _change(self, action: str, message: dict) -> Reply:
        if not self.authenticated:
            return Reply([wire.error(401)])
        requested = {key: value for key, value in message.items() if key != "action"}
        if any(key in wire.OTHER_FEED_CHANNELS for key in requested):
            return Reply([wire.error(410)])
        if not all(key in self.channels and _symbol_list(value)
                   for key, value in requested.items()):
            return Reply([wire.error(400)])
        updated = {channel: dict(symbols) for channel, symbols in self.channels.items()}
        for channel, symbols in requested.items():
            for symbol in symbols:
                if action == "subscribe":
                    updated[channel][symbol] = None
                else:
                    updated[channel].pop(symbol, None)
        if self._over_limit(updated):
            return Reply([wire.error(405)])
        self.channels = updated
        return Reply([self.subscription()])

    def _over_limit(self, channels: dict[str, dict[str, None]]) -> bool:
        limit = self.account.symbol_limit
        return bool(limit) and len({s for symbols in channels.values() for s in symbols}) > limit


def _symbol_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(symbol, str) for symbol in value)
