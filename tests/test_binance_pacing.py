"""Binance's REST limits, pure: a 429 or a 418 holds every REST request of the handler until
its Retry-After has passed (across reconnects too) and says so in a Status; Binance's
used-weight header counts against the budget; past SLOW_AT of the budget requests slow to
its even pace; and a superseded request keeps its slot until it is answered. Time goes in as
a parameter, answers by hand, as the client would hand them over."""

from __future__ import annotations

import json

import pytest

from tickmesh.bus.events import Control
from tickmesh.handlers.binance.pacing import NS, SnapshotPacer
from tickmesh.handlers.binance.protocol import BACKOFF_TIMER, PUMP_TIMER, BinanceProtocol
from tickmesh.handlers.common.protocol import HttpResponse, Output, Resubscribe, Timer
from tests.test_binance_protocol import BOOK, answer, depth, frame, protocol, requests

T0 = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z: 20 s into its minute
SYMBOLS = ("A-USDT", "B-USDT", "C-USDT")


def refused(symbol: str, status: int, retry_after: str | None = None) -> HttpResponse:
    headers = (("retry-after", retry_after),) if retry_after is not None else ()
    body = b'{"code":-1003,"msg":"Way too much request weight used."}'
    return HttpResponse(f"depth:{symbol}", status, body, headers=headers)


def weighed(symbol: str, used: str) -> HttpResponse:
    return answer(symbol, 1, **BOOK)._replace(headers=(("x-mbx-used-weight-1m", used),))


class Client:
    """The snapshot requests a protocol sent and that are not answered yet, oldest first, as
    the client holds them."""

    def __init__(self, p: BinanceProtocol) -> None:
        self.p = p
        self.out: list[str] = []

    def take(self, out: Output) -> Output:
        self.out += [r.key for r in requests(out)]
        return out

    def answer(self, response: HttpResponse, ts: int = T0) -> Output:
        self.out.remove(response.key)  # the oldest of that key
        return self.take(self.p.http_response(response, ts))

    def connect(self, ts: int = T0) -> Output:
        """A new connection (what was in flight ends with the old one), its SUBSCRIBE
        acknowledged."""
        self.out.clear()
        start = self.p.start()
        request = json.loads(start.replies[0])
        return self.take(self.p.receive(frame({"result": None, "id": request["id"]}), ts))

    def pump(self, ts: int) -> Output:
        return self.take(self.p.timer(PUMP_TIMER, ts))


def states(out: Output) -> list[tuple[str, int]]:
    return [(c.state, c.code) for c in out.changes]


def resync_asked(p: BinanceProtocol, symbol: str) -> None:
    request = Control(provider="binance", symbol=symbol, ts_event=T0, ts_recv=T0,
                      action="resync", sender="test")
    assert p.control(request, T0).effects
    p.resubscribe(symbol)


# --- Retry-After ---------------------------------------------------------------------------

def test_a_429_holds_every_rest_request_until_retry_after_has_passed():
    p = protocol(SYMBOLS, channels=("depth",), snapshots_in_flight=1)
    client = Client(p)
    client.connect()
    assert client.out == ["depth:A-USDT"]
    out = client.answer(refused("A-USDT", 429, "120"))
    assert not requests(out) and states(out) == [("error", 429)]
    message = out.changes[0].message
    assert "429" in message and "until 2023-11-14T22:15:20Z" in message and "120 s" in message
    assert p.counters["binance_rest_backoffs", "429"] == 1
    assert Timer(PUMP_TIMER, 120.0) in out.effects and Timer(BACKOFF_TIMER, 120.0) in out.effects
    assert not requests(client.pump(T0 + 119 * NS))
    resync_asked(p, "B-USDT")  # asked over the bus meanwhile: it waits too
    assert not requests(client.pump(T0 + 60 * NS))
    assert client.out == []
    after = client.pump(T0 + 120 * NS)
    assert [r.key for r in requests(after)] == ["depth:A-USDT"]  # the refused one first


def test_a_418_ban_holds_every_request_across_reconnects_until_it_ends():
    p = protocol(SYMBOLS, channels=("depth",))
    client = Client(p)
    client.connect()
    assert len(client.out) == 3
    out = client.answer(refused("A-USDT", 418, "7200"))
    assert states(out) == [("error", 418)] and "until 2023-11-15T00:13:20Z" in \
        out.changes[0].message and "ban" in out.changes[0].message
    later = client.answer(refused("B-USDT", 418, "7199"), T0 + NS // 2)
    assert not later.changes and not requests(later)  # the same ban: said once
    assert not requests(client.answer(answer("C-USDT", 1, **BOOK), T0 + NS))
    again = client.connect(T0 + 10 * NS)
    assert not requests(again) and ("error", 418) in states(again)  # said again, still held
    assert p.counters["binance_rest_backoffs", "418"] == 1
    assert not requests(client.pump(T0 + 7199 * NS))
    end = client.take(p.timer(BACKOFF_TIMER, T0 + 7200 * NS))
    assert states(end) == [("subscribed", 0)] and "418" in end.changes[0].message
    assert sorted(client.out) == ["depth:A-USDT", "depth:B-USDT", "depth:C-USDT"]


def test_a_418_after_a_429_is_news_and_holds_longer():
    p = protocol(SYMBOLS, channels=("depth",))
    client = Client(p)
    client.connect()
    assert states(client.answer(refused("A-USDT", 429, "10"))) == [("error", 429)]
    out = client.answer(refused("B-USDT", 418, "300"), T0 + NS)
    assert states(out) == [("error", 418)]
    assert p.counters["binance_rest_backoffs", "429"] == 1
    assert p.counters["binance_rest_backoffs", "418"] == 1
    assert not requests(client.pump(T0 + 11 * NS))
    assert requests(client.pump(T0 + 301 * NS))


@pytest.mark.parametrize("status, header, hold, bad", [
    (429, None, 60.0, 0), (418, None, 120.0, 0), (429, "soon", 60.0, 1), (429, "-5", 60.0, 1),
    (418, "99999999999", 3 * 86_400.0, 0), (429, "0", 0.0, 0)])
def test_retry_after_missing_or_malformed_holds_for_the_default_and_is_capped(
        status, header, hold, bad):
    p = protocol(SYMBOLS, channels=("depth",), snapshots_in_flight=1)
    client = Client(p)
    client.connect()
    out = client.answer(refused("A-USDT", status, header))
    assert p.counters["bad_input", "malformed_header"] == bad
    if hold:
        assert Timer(PUMP_TIMER, hold) in out.effects and not requests(out)
    else:
        assert requests(out)


def test_a_refused_answer_is_not_a_failed_snapshot_and_resyncs_nothing():
    p = protocol(SYMBOLS, channels=("depth",))
    client = Client(p)
    client.connect()
    p.receive(depth("AUSDT", 2, 2), T0)
    out = client.answer(refused("A-USDT", 429, "5"))
    assert not any(isinstance(e, Resubscribe) for e in out.effects)
    assert ("resyncing", 0) not in states(out)
    assert p.counters["binance_snapshots", "failed"] == 0
    assert [r.key for r in requests(client.pump(T0 + 5 * NS))] == ["depth:A-USDT"]
    snapshot = client.answer(answer("A-USDT", 1, **BOOK), T0 + 5 * NS)
    assert [e.symbol for e in snapshot.events] == ["A-USDT"]  # its buffer was kept


# --- used weight ---------------------------------------------------------------------------

def test_binances_used_weight_counts_against_the_budget_until_its_minute_ends():
    pacer = SnapshotPacer(weight=50, weight_per_minute=1000, max_in_flight=10)
    pacer.report(960, T0)  # the IP's weight this minute, other clients' too
    pacer.report(100, T0 + NS)  # an answer that took longer: older news
    pacer.add("A")
    assert pacer.take(T0 + NS) == [] and pacer.wait(T0 + NS) == 39.0
    assert pacer.used(T0 + NS) == 960
    assert pacer.take(T0 + 40 * NS) == ["A"]  # a new minute at Binance


def test_the_used_weight_header_holds_requests_and_shows_in_the_gauge():
    p = protocol(SYMBOLS, channels=("depth",), weight_per_minute=1000, snapshots_in_flight=1)
    client = Client(p)
    client.connect()
    out = client.answer(weighed("A-USDT", "990"))
    assert not requests(out) and Timer(PUMP_TIMER, 40.0) in out.effects
    assert p.counters["binance_rest_weight"] == 990
    assert requests(client.pump(T0 + 40 * NS))
    client.answer(weighed("B-USDT", "lots"), T0 + 40 * NS)
    assert p.counters["bad_input", "malformed_header"] == 1


def test_past_slow_at_of_the_budget_requests_go_at_its_even_pace():
    pacer = SnapshotPacer(weight=50, weight_per_minute=1000, max_in_flight=100)
    for i in range(30):
        pacer.add(f"S{i}")
    assert len(pacer.take(T0)) == 16  # 800 of 1000: 80 %
    assert pacer.wait(T0) == 3.0  # 60 s * 50 / 1000: the pace that spends it in a minute
    assert pacer.take(T0 + 2 * NS) == []
    sent = [len(pacer.take(T0 + k * 3 * NS)) for k in range(1, 6)]
    assert sent == [1, 1, 1, 1, 0]  # the budget is spent: the window has to move on
    assert pacer.wait(T0 + 15 * NS) == 45.0


# --- requests in flight --------------------------------------------------------------------

def test_a_removed_symbol_asked_again_holds_a_slot_of_its_own():
    pacer = SnapshotPacer(weight=1, weight_per_minute=1000, max_in_flight=2)
    pacer.add("A")
    assert pacer.take(T0) == ["A"]
    pacer.remove("A")  # resynced while its request is out: that request is superseded
    pacer.add("A")
    pacer.add("B")
    assert pacer.take(T0) == ["A"]  # the superseded request holds its slot until answered
    assert pacer.done("A") is False  # its answer: superseded, and frees only its own slot
    assert pacer.take(T0) == ["B"]
    assert pacer.done("A") is True and pacer.done("B") is True


def test_never_more_requests_outstanding_than_snapshots_in_flight():
    p = protocol(SYMBOLS, channels=("depth",), snapshots_in_flight=2)
    client = Client(p)
    client.connect()
    assert client.out == ["depth:A-USDT", "depth:B-USDT"]
    client.answer(answer("B-USDT", 1, **BOOK))
    client.answer(answer("C-USDT", 1, **BOOK))
    assert client.out == ["depth:A-USDT"]
    p.receive(depth("AUSDT", 5, 5, bids=[("abc", "1")]), T0)  # A resyncs, its request out
    p.resubscribe("A-USDT")
    client.pump(T0)
    assert client.out == ["depth:A-USDT", "depth:A-USDT"]
    resync_asked(p, "B-USDT")
    client.pump(T0)
    assert len(client.out) == 2, client.out
    superseded = client.answer(answer("A-USDT", 1, **BOOK))  # the first A: superseded
    assert not superseded.events and client.out == ["depth:A-USDT", "depth:B-USDT"]
