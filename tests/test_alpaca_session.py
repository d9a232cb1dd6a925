"""The simulator's server-side session, pure: client messages in, the real server's replies out."""

from __future__ import annotations

import json

import msgpack
import pytest

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim.session import Account, Registry, ServerSession


def session(account: Account = Account(), registry: Registry | None = None,
            feed: str = "iex") -> ServerSession:
    return ServerSession(account, registry or Registry(), feed)


def send(s: ServerSession, message: dict) -> tuple[list, bool]:
    reply = s.receive(json.dumps(message))
    return reply.messages, reply.close


def codes(messages: list) -> list[int]:
    return [m.code for m in messages if isinstance(m, wire.Error)]


AUTH = {"action": "auth", "key": "key", "secret": "secret"}


def test_welcome_then_auth_by_message():
    s = session(Account(key="key", secret="secret"))
    assert s.open().messages == [wire.Success("connected")]
    assert send(s, AUTH) == ([wire.Success("authenticated")], False)
    assert codes(send(s, AUTH)[0]) == [403]


def test_auth_by_upgrade_headers():
    s = session(Account(key="key", secret="secret"))
    reply = s.open("key", "secret")
    assert reply.messages == [wire.Success("connected"), wire.Success("authenticated")]
    assert s.authenticated


@pytest.mark.parametrize("opened_with", [(None, None), ("key", "wrong")])
def test_wrong_keys_are_402_and_the_connection_closes(opened_with):
    s = session(Account(key="key", secret="secret"))
    reply = s.open(*opened_with)
    if reply.close:
        messages = reply.messages[1:]
    else:
        messages, close = send(s, {**AUTH, "secret": "wrong"})
        assert close
    assert codes(messages) == [402] and not s.authenticated


def test_any_keys_are_accepted_when_the_account_has_none():
    s = session()
    messages, _ = send(s, {"action": "auth", "key": "x", "secret": "y"})
    assert messages == [wire.Success("authenticated")]


def test_feed_outside_the_subscription_is_409():
    s = session(Account(feeds=("iex",)), feed="sip")
    messages, close = send(s, AUTH)
    assert codes(messages) == [409] and close


def test_connection_limit_is_406_until_a_place_frees_up():
    registry = Registry(limit=1)
    first, second = session(registry=registry), session(registry=registry)
    send(first, AUTH)
    messages, close = send(second, AUTH)
    assert codes(messages) == [406] and not close  # the client may retry on this connection
    first.close()
    assert send(second, AUTH)[0] == [wire.Success("authenticated")]


def test_timeout_is_404_and_closes():
    reply = session().timed_out()
    assert codes(reply.messages) == [404] and reply.close


def test_subscribe_before_auth_is_401():
    assert codes(send(session(), {"action": "subscribe", "trades": ["AAPL"]})[0]) == [401]


@pytest.mark.parametrize("data", [b"\xc1", "not json", '["auth"]', '{"action":"dance"}',
                                  '{"action":"auth","key":1,"secret":"s"}'])
def test_unreadable_messages_are_400(data):
    assert codes(session().receive(data).messages) == [400]


def test_subscription_reply_is_the_full_set_with_trade_followers():
    s = session()
    send(s, AUTH)
    send(s, {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AMD", "CLDR"]})
    (reply,), _ = send(s, {"action": "subscribe", "trades": ["MSFT", "AAPL"], "bars": ["*"]})
    assert reply == wire.Subscription(trades=["AAPL", "MSFT"], quotes=["AMD", "CLDR"], bars=["*"],
                                      corrections=["AAPL", "MSFT"], cancelErrors=["AAPL", "MSFT"])
    (reply,), _ = send(s, {"action": "unsubscribe", "trades": ["AAPL"], "quotes": ["CLDR"]})
    assert (reply.trades, reply.quotes, reply.corrections) == (["MSFT"], ["AMD"], ["MSFT"])
    assert s.wants("trades", "MSFT") and not s.wants("trades", "AAPL")
    assert s.wants("bars", "ANYTHING") and not s.wants("lulds", "MSFT")


def test_msgpack_client_messages_are_read_too():
    s = session()
    assert s.receive(msgpack.packb(AUTH)).messages == [wire.Success("authenticated")]


def test_bad_subscriptions():
    s = session(Account(symbol_limit=2))
    send(s, AUTH)
    assert codes(send(s, {"action": "subscribe", "orderbooks": ["BTC/USD"]})[0]) == [410]
    assert codes(send(s, {"action": "subscribe", "trades": "AAPL"})[0]) == [400]
    assert codes(send(s, {"action": "subscribe", "trade": ["AAPL"]})[0]) == [400]
    send(s, {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL", "AMD"]})
    assert codes(send(s, {"action": "subscribe", "trades": ["TSLA"]})[0]) == [405]
    assert s.subscription().trades == ["AAPL"]  # the previous subscription stays in force


def test_encoded_frames_put_the_type_first():
    messages = [wire.error(402), wire.Success("connected"), wire.Subscription(trades=["A"])]
    for message in messages:
        assert wire.encode_frame([message], wire.JSON).startswith(b'[{"T":')
        assert next(iter(msgpack.unpackb(wire.encode_frame([message], wire.MSGPACK))[0])) == "T"
