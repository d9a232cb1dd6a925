"""Issue 9 end to end, real processes and sockets: a provider's bad numbers reach the bus only
as counts in the handler's heartbeat, while the good messages of the same frames arrive; a
payload under the wrong topic and a forged sequence jump leave a consumer running and sane."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import msgpack

from tickmesh.bus import Heartbeat, Publisher, Quote, Subscriber, Trade, events
from tickmesh.bus.events import Bar
from tickmesh.bus.subscriber import MAX_GAP
from tests.buslog import BusLog
from tests.polygon_sim import start_sim
from tests.scripted_server import ScriptedServer
from tests.test_polygon_handler import HANDLER_SETTINGS as POLYGON_HANDLER
from tests.test_polygon_handler import KEY, KEY_ENV
from tests.test_readme import start_readme_consumer


def test_polygon_keeps_the_good_trades_of_frames_with_bad_numbers(
        forwarder, spawn_child, start_handler, monkeypatch, tmp_path):
    def trade(n: int, price: str = "1.5", size: str = "10") -> str:
        return (f'{{"ev":"T","sym":"AAPL","x":4,"i":"{n}","p":{price},"s":{size},'
                f'"t":1764600000000,"q":{n}}}')

    bar = '{"ev":"A","sym":"AAPL","v":5,"o":2,"c":2,"h":1,"l":3,"s":1764600000000,"e":1764600001000}'
    lines = [f"[{trade(1)},{trade(90, price='1e999')},{trade(2)}]",
             f"[{trade(91, price='NaN')},{trade(92, size='Infinity')},{trade(3)}]",
             f"[{trade(93, size='-500')},{bar},{trade(94, price='0')},{trade(4)}]"]
    recording = tmp_path / "frames.jsonl"
    recording.write_text("\n".join(lines) + "\n")
    with BusLog(forwarder.subscribe, ["trade.polygon", "bar.polygon", "heartbeat.polygon"]) as bus:
        sim = start_sim(spawn_child, replay=str(recording), rate=100)
        monkeypatch.setenv(KEY_ENV, KEY)
        start_handler("polygon", sim.port,
                      **{**POLYGON_HANDLER, "channels": ["T", "A"], "stale_after": 0})

        def counted(_events) -> Heartbeat | None:
            return next((b for b in reversed(bus.of(Heartbeat))
                         if b.metric("bad_input", reason="bad_price") >= 1), None)

        beat = bus.until(counted, what="a heartbeat counting the bad values")
        bus.until(lambda _: len(bus.of(Trade)) >= 4, what="the four good trades")
        assert [t.trade_id for t in bus.of(Trade)] == ["1", "2", "3", "4"]
        assert not bus.of(Bar)
        assert [beat.metric("bad_input", reason=r) for r in (
            "non_finite", "bad_size", "bad_bar", "bad_price")] == [3, 1, 1, 1]
        assert beat.metric("connects") == 1


def test_alpaca_msgpack_bad_values_are_counted_and_the_rest_published(forwarder, start_handler):
    ts = msgpack.Timestamp.from_unix_nano(1_764_600_000_123_000_000)

    def trade(n: int, **changes) -> dict:
        return {"T": "t", "S": "AAPL", "i": n, "x": "V", "p": 100.0 + n, "s": 10, "t": ts,
                "c": ["@"], "z": "C", **changes}

    quote = {"T": "q", "S": "AAPL", "bx": "V", "bp": 10.0, "bs": 1, "ax": "V", "ap": 9.5,
             "as": 1, "t": ts}
    data = [trade(1), trade(2, p=math.nan), trade(3, s=-500), trade(4, p=0.0),
            trade(5, t=msgpack.Timestamp(0, 0)), trade(6, S=""), trade(7, S="MSFT"),
            trade(8, s=math.inf), quote, trade(9)]

    def script(message: bytes | str) -> list:
        action = msgpack.unpackb(message.encode() if isinstance(message, str) else message)
        if action.get("action") == "auth":
            return [msgpack.packb([{"T": "success", "msg": "authenticated"}])]
        if action.get("action") == "subscribe":
            return [msgpack.packb([{"T": "subscription", "trades": ["AAPL"],
                                    "quotes": ["AAPL"]}]), msgpack.packb(data)]
        return []

    greeting = [msgpack.packb([{"T": "success", "msg": "connected"}])]
    with ScriptedServer(script, greeting, raw=True) as server, \
            BusLog(forwarder.subscribe, ["trade.alpaca", "quote.alpaca",
                                         "heartbeat.alpaca"]) as bus:
        start_handler("alpaca", url=server.url + "/v2/iex", symbols=["AAPL"])
        beat = bus.until(lambda _: next((b for b in reversed(bus.of(Heartbeat))
                                         if b.metric("bad_input", reason="unsubscribed")), None),
                         what="a heartbeat counting the bad messages")
        bus.until(lambda _: len(bus.of(Trade)) >= 2 and bus.of(Quote), what="the good events")
        assert [t.trade_id for t in bus.of(Trade)] == ["1", "9"]
        assert [(q.bid_price, q.ask_price) for q in bus.of(Quote)] == [(10.0, 9.5)]
        assert {r: beat.metric("bad_input", reason=r) for r in (
            "non_finite", "bad_size", "bad_price", "bad_time", "bad_symbol", "unsubscribed")} \
            == {"non_finite": 2, "bad_size": 1, "bad_price": 1, "bad_time": 1, "bad_symbol": 1,
                "unsubscribed": 1}
        assert beat.metric("quotes_crossed", provider="alpaca") == 1


def test_readme_consumer_survives_a_trade_under_a_quote_topic_and_a_forged_sequence(
        forwarder, spawn, run_dir):
    proc = start_readme_consumer(spawn, run_dir, forwarder, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
    sub = Subscriber(forwarder.subscribe, ["quote.*.AAPL"])
    stop = threading.Event()
    topic = b"quote.alpaca.AAPL|"

    def publish() -> None:
        pub = Publisher(forwarder.publish)
        while not stop.wait(0.005):
            pub.publish(Quote(provider="alpaca", symbol="AAPL", ts_event=1, ts_recv=2,
                              bid_price=100.0, bid_size=1.0, ask_price=100.5, ask_size=1.0))
            pub.publish_raw(topic, events.encode(Trade(  # the wrong kind under the topic
                provider="alpaca", symbol="AAPL", ts_event=1, ts_recv=2, price=1.0, size=1.0,
                seq=1, epoch=pub.epoch)))
            pub.publish_raw(topic, events.encode(Quote(  # a forged jump of 10^15
                provider="alpaca", symbol="AAPL", ts_event=1, ts_recv=2, bid_price=100.0,
                bid_size=1.0, ask_price=100.5, ask_size=1.0, seq=10**15, epoch=pub.epoch)))
        pub.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        lines = [proc.stdout.readline().split() for _ in range(10)]
        received = []
        while len(received) < 20:
            event = sub.recv(timeout=10)
            assert event is not None, "no quotes"
            received.append(event)
    finally:
        stop.set()
        publisher.join()
        sub.close()
    assert all(line == ["alpaca", "AAPL", "mid", "100.2500"] for line in lines)
    assert proc.poll() is None  # still running: no AttributeError
    assert all(isinstance(e, Quote) for e in received)
    assert sub.malformed >= 1 and sub.tracker.implausible >= 1
    assert sub.missed < MAX_GAP and sub.missed < 1000
