"""The book scenario's two hot paths alone, in one process, with nothing else on the CPU: the
Binance protocol turning the recorded frames into BookDeltas, and the order-book builder
applying them and publishing bbo (through a real Publisher into a bound socket nobody reads).
Unlike bench.binance_books, every recorded depthUpdate after the snapshots becomes a delta
(the snapshots are answered before the stream starts), so runs compare like with like.

usage: python -m bench.book_micro [--events N] [--runs N]
Prints µs per depthUpdate of each side (best of the runs) and the bbo published.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import zmq

from bench import binance_books, binance_depth
from tickmesh.bus import events
from tickmesh.bus.publisher import Publisher
from tickmesh.consumers.books.builder import Builder, Settings
from tickmesh.handlers.binance.protocol import BinanceProtocol, Config
from tickmesh.handlers.common.protocol import HttpRequest, HttpResponse

T0 = 1_700_000_000 * 10**9


def handler_events(recording: Path, symbols: list[str]) -> tuple[float, list[events.Event]]:
    """Seconds the protocol spent on the frames, and the events it made."""
    p = BinanceProtocol(Config(symbols=tuple(symbols), channels=("depth",)), Counter())
    start = p.start()
    ack = json.dumps({"result": None, "id": json.loads(start.replies[0])["id"]}).encode()
    out = p.receive(ack, T0)
    answers = {}
    for line in (recording / "snapshots.jsonl").read_text().splitlines():
        entry = json.loads(line)
        answers[entry["symbol"]] = json.dumps(entry["response"]).encode()
    requests = [e for e in out.effects if isinstance(e, HttpRequest)]
    while requests:
        request = requests.pop()
        native = dict(request.params)["symbol"]
        out = p.http_response(HttpResponse(request.key, 200, answers[native]), T0)
        requests += [e for e in out.effects if isinstance(e, HttpRequest)]
    frames = [line.encode() for line in (recording / "frames.jsonl").read_text().splitlines()]
    made: list[events.Event] = []
    receive = p.receive
    begin = time.perf_counter()
    for frame in frames:
        made += receive(frame, T0).events
    return time.perf_counter() - begin, made


def builder_seconds(made: list[events.Event], endpoint: str) -> tuple[float, int]:
    """Seconds the builder spent on the events (decoded from their bytes, as the bus hands
    them over, in batches as AsyncSubscriber.batches makes them), and the bbo it published."""
    publisher = Publisher(endpoint, ready_timeout=2.0)
    counts: Counter = Counter()
    ctx = SimpleNamespace(settings=Settings(snapshot_endpoint="ipc:///nowhere"),
                          publisher=publisher, counts=counts, name="books")
    builder = Builder(ctx)  # type: ignore[arg-type]
    decoded = [events.decode(events.encode(event)) for event in made]
    batch = getattr(builder, "on_batch", None)
    begin = time.perf_counter()
    for i in range(0, len(decoded), 256):
        if batch:
            batch(decoded[i:i + 256], 0.0)
        else:
            for event in decoded[i:i + 256]:
                builder.on_event(event, 0.0)
    seconds = time.perf_counter() - begin
    bbo = sum(stream[1] for key, stream in publisher._streams.items() if key[0] is events.Bbo)
    publisher.close()
    return seconds, bbo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=binance_books.EVENTS)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    recording = binance_depth.recording(binance_books.SYMBOLS, args.events)
    truth = binance_depth.truth(recording)
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = f"ipc://{tmp}/publish"
        sink = zmq.Context.instance().socket(zmq.XSUB)
        sink.setsockopt(zmq.RCVHWM, 0)
        sink.bind(endpoint)
        sink.send(b"\x01")  # subscribe to everything: the publisher's sends go out
        handler, builder, bbo = [], [], 0
        for _ in range(args.runs):
            seconds, made = handler_events(recording, truth["symbols"])
            handler.append(seconds / truth["updates"] * 1e6)
            seconds, bbo = builder_seconds(made, endpoint)
            builder.append(seconds / truth["updates"] * 1e6)
        sink.close(0)
    deltas = sum(isinstance(event, events.BookDelta) for event in made)
    print(f"{deltas:,} deltas: handler {min(handler):.2f} µs/update, builder "
          f"{min(builder):.2f} µs/update, {bbo:,} bbo")


if __name__ == "__main__":
    main()
