"""A bare bus peer for the security tests, started with a child spec like any child:
settings {"role": "sub"} prints `event TOPIC` for every message it receives; {"role": "pub"}
publishes a Trade (provider = its name) every 5 ms. Either prints `refused` each time the
forwarder refuses its CURVE handshake (its key is not authorized), from the socket's monitor."""

import sys
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from tickmesh.bus import Trade, sockets
from tickmesh.bus.publisher import Publisher
from tickmesh.runtime.spec import child_spec

REFUSED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


def say(line: str) -> None:
    print(line, flush=True)


def main() -> None:
    spec = child_spec()
    sockets.use(spec.bus)
    if spec.settings["role"] == "sub":
        sock = sockets.subscriber(spec.bus.subscribe, [b""], spec.bus.receive_hwm)
        publisher = None
    else:
        publisher = Publisher(spec.bus.publish, ready_timeout=0)
        sock = publisher._socket
    monitor = sock.get_monitor_socket(REFUSED)
    poller = zmq.Poller()
    poller.register(monitor, zmq.POLLIN)
    if publisher is None:
        poller.register(sock, zmq.POLLIN)
    while True:
        for ready, _ in poller.poll(5):
            if ready is monitor:
                recv_monitor_message(monitor)
                say("refused")
            else:
                say(f"event {sock.recv_multipart()[0].decode()}")
        if publisher is not None:
            now = time.time_ns()
            publisher.drain_subscriptions()
            publisher.publish(Trade(provider=spec.name, symbol="X", ts_event=now, ts_recv=now,
                                    price=1.0, size=1.0))


if __name__ == "__main__":
    sys.exit(main())
