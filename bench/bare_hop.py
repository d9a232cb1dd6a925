"""The latency floor: a bare pyzmq PUB, a bare libzmq proxy (zmq.proxy between an XSUB and an
XPUB, as bus.forwarder without anything of ours) and a raw SUB (bench.probe --bare), each a
process, on ipc:// endpoints like the bus's; the publisher follows the same plan phases as
bench.feed (the same pacing and frame shape: a "frame" of k messages is k messages sent back to
back), stamping each message with its own send time.

usage: python -m bench.bare_hop proxy FRONTEND BACKEND
       python -m bench.bare_hop pub FRONTEND PHASES_JSON
"""

from __future__ import annotations

import argparse
import json
import time

import zmq

from bench.feed import ID_BASE, STRIDE, paced
from bench.probe import BARE_PAYLOAD, BARE_PREFIX
from tickmesh.bus import sockets
from tickmesh.runtime.lifeline import exit_with_parent

JOIN_S = 0.5
"""How long the publisher waits after connecting, for the subscription to reach it."""


def proxy(frontend: str, backend: str) -> None:
    context = zmq.Context.instance()
    xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    for socket in (xsub, xpub):
        socket.setsockopt(zmq.SNDHWM, sockets.DEFAULT_HWM)
        socket.setsockopt(zmq.RCVHWM, sockets.DEFAULT_HWM)
    xsub.bind(frontend)
    xpub.bind(backend)
    print("ready", flush=True)
    zmq.proxy(xsub, xpub)


def publish(frontend: str, phases: list[dict], symbols: int) -> None:
    socket = zmq.Context.instance().socket(zmq.PUB)
    socket.setsockopt(zmq.SNDHWM, sockets.DEFAULT_HWM)
    socket.connect(frontend)
    time.sleep(JOIN_S)
    # the topic of the k-th message: bench.feed's symbol of k
    stride_topics = [BARE_PREFIX + f"S{k * STRIDE % symbols:05d}|".encode()
                     for k in range(symbols)]
    send, pack, time_ns, more = socket.send, BARE_PAYLOAD.pack, time.time_ns, zmq.SNDMORE

    def send_frame(phase: int, first: int, count: int) -> None:
        base = phase * ID_BASE
        for k in range(first, first + count):
            send(stride_topics[k % symbols], more)
            send(pack(base + k, time_ns()))

    for phase in phases:
        if "pause" in phase:
            time.sleep(phase["pause"])
        elif "paced" in phase:
            number, rate, per_frame, seconds = phase["paced"]
            paced(send_frame, number, rate, per_frame, seconds)
    socket.close(linger=5_000)
    print("done", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("proxy", "pub"))
    parser.add_argument("frontend")
    parser.add_argument("other")
    parser.add_argument("--symbols", type=int, default=1000)
    args = parser.parse_args()
    exit_with_parent()
    if args.role == "proxy":
        proxy(args.frontend, args.other)
    else:
        publish(args.frontend, json.loads(args.other), args.symbols)


if __name__ == "__main__":
    main()
