"""A bench-only Alpaca stream (the wire protocol of handlers.alpaca.sim, its session and
encodings), for the scenarios that need what the simulator does not offer: trades at a set rate
and a set number of messages per frame, each stamped with its send time.

usage: python -m bench.feed PORT PLANS_JSON
PLANS_JSON is a file {"NAME": {"symbols": K, "phases": [...]}, ...}; a client picks its plan by
the query of its URL (ws://127.0.0.1:PORT/v2/iex?plan=NAME). Once it has authenticated and
subscribed (handlers.alpaca.sim.session, msgpack frames only), the plan's phases run in order:
- {"pause": S}: nothing for S seconds;
- {"paced": [PHASE, RATE, PER_FRAME, SECONDS]}: RATE trades a second in frames of PER_FRAME,
  a frame every PER_FRAME / RATE seconds on absolute deadlines (late frames go out at once);
  every trade's `t` is the time.time_ns() at which its frame was encoded, just before the write:
  the handler makes it ts_event, and a consumer on the same machine reads its latency as
  time.time_ns() - ts_event;
- {"blast": [PHASE, FRAMES, PER_FRAME]}: FRAMES frames built before the plan starts, written as
  fast as the socket takes them (as the simulator's blast mode; their `t` is the build time).
The k-th trade of a phase has trade_id PHASE * ID_BASE + k and the symbol S{(k * 7919) % K}
(zero-padded to 5 digits): every symbol equally often, spread over the phase, so that a
consumer can tell the phase and position of each trade and what it should get.

The frames are written straight to the socket, already serialized (server frames are not
masked): the handler must not ping (ping_interval 0), the one thing that would have the
library write on this connection meanwhile. After the plan the connection stays open, idle.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.sync.server import ServerConnection, serve

from tickmesh.handlers.alpaca import wire
from tickmesh.handlers.alpaca.sim.session import Account, Registry, ServerSession
from tickmesh.handlers.alpaca.wire import TradeMessage
from tickmesh.runtime.lifeline import exit_with_parent

ID_BASE = 1_000_000_000
STRIDE = 7919  # prime: (k * STRIDE) % K visits every symbol once in K trades
BLAST_WRITE_FRAMES = 64


def symbol_names(count: int) -> list[str]:
    return [f"S{i:05d}" for i in range(count)]


def symbol_of(k: int, symbols: list[str]) -> str:
    return symbols[(k * STRIDE) % len(symbols)]


def paced(send: Callable[[int, int, int], None], phase: int, rate: float, per_frame: int,
          seconds: float) -> None:
    """Call send(phase, first k, count) for each frame of the phase, on its deadline."""
    interval = per_frame / rate
    frames = max(1, round(seconds * rate / per_frame))
    clock, sleep = time.perf_counter, time.sleep
    start = clock()
    for f in range(frames):
        delay = start + f * interval - clock()
        if delay > 0:
            sleep(delay)
        send(phase, f * per_frame, per_frame)


class Plan:
    def __init__(self, symbols: int, phases: list[dict]) -> None:
        self.symbols = symbol_names(symbols)
        self.phases = phases
        self._blasts: dict[int, list[bytes]] = {}
        for phase in phases:
            if "blast" in phase:
                number, frames, per_frame = phase["blast"]
                self._blasts[number] = self._blast(number, frames, per_frame)

    def frame(self, phase: int, first: int, count: int, now_ns: int) -> bytes:
        stamp = wire.timestamp_ext(now_ns)
        base, symbols = phase * ID_BASE, self.symbols
        trades = [TradeMessage(symbol=symbol_of(k, symbols), trade_id=base + k, exchange="V",
                               price=100.25, size=100, time=stamp, conditions=["@"], tape="C")
                  for k in range(first, first + count)]
        return Frame(Opcode.BINARY, wire.encode_frame(trades, wire.MSGPACK)).serialize(mask=False)

    def _blast(self, phase: int, frames: int, per_frame: int) -> list[bytes]:
        now = time.time_ns()
        serialized = [self.frame(phase, f * per_frame, per_frame, now) for f in range(frames)]
        return [b"".join(serialized[i:i + BLAST_WRITE_FRAMES])
                for i in range(0, len(serialized), BLAST_WRITE_FRAMES)]

    def run(self, write: Callable[[bytes], None]) -> None:
        frame, time_ns = self.frame, time.time_ns

        def send(phase: int, first: int, count: int) -> None:
            write(frame(phase, first, count, time_ns()))

        for phase in self.phases:
            if "pause" in phase:
                time.sleep(phase["pause"])
            elif "paced" in phase:
                number, rate, per_frame, seconds = phase["paced"]
                paced(send, number, rate, per_frame, seconds)
            else:
                for chunk in self._blasts[phase["blast"][0]]:
                    write(chunk)


def serve_plans(port: int, plans: dict[str, Plan]) -> None:
    registry = Registry()

    def handle(connection: ServerConnection) -> None:
        request = connection.request
        query = parse_qs(urlsplit(request.path).query)
        plan = plans.get(query.get("plan", [""])[0])
        session = ServerSession(Account(), registry, "iex")

        def reply(messages: list) -> None:
            for message in messages:
                connection.send(wire.encode_frame([message], wire.MSGPACK))

        try:
            reply(session.open(request.headers.get(wire.KEY_HEADER),
                               request.headers.get(wire.SECRET_HEADER)).messages)
            while not session.channels["trades"]:
                answer = session.receive(connection.recv())
                reply(answer.messages)
                if answer.close:
                    return
            if plan is None:
                reply([wire.error(400)])
                return
            plan.run(connection.socket.sendall)
            for _ in connection:  # idle until the client goes
                pass
        except (ConnectionClosed, OSError):
            pass
        finally:
            session.close()

    with serve(handle, "127.0.0.1", port, compression=None, ping_interval=None,
               max_size=2**24) as server:
        print("ready", flush=True)
        server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("plans", type=Path)
    args = parser.parse_args()
    exit_with_parent()
    raw = json.loads(args.plans.read_text())
    plans = {name: Plan(spec["symbols"], spec["phases"]) for name, spec in raw.items()}
    threading.excepthook = lambda hook: print(f"feed: {hook.exc_value!r}", file=sys.stderr)
    serve_plans(args.port, plans)


if __name__ == "__main__":
    main()
