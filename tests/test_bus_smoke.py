"""The forwarder carries a publisher's events to a subscriber in another process."""

from tickmesh.bus import Publisher, Subscriber, Trade
from tests.waiting import wait_until


def test_event_crosses_the_forwarder(forwarder):
    sub = Subscriber(forwarder.subscribe, ["trade.alpaca.AAPL"])
    pub = Publisher(forwarder.publish)
    got = []

    def delivered():
        pub.publish(Trade(provider="alpaca", symbol="AAPL", ts_event=1, ts_recv=2, price=10.0, size=1.0))
        event = sub.recv(timeout=0.05)
        if event is not None:
            got.append(event)
        return got

    wait_until(delivered, timeout=10, what="a trade through the forwarder")
    assert got[0].price == 10.0 and got[0].symbol == "AAPL"
    pub.close()
    sub.close()
