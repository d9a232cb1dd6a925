"""Gap fill: a consumer whose messages the bus dropped (it was SIGSTOPped, with a small
receive queue) gets them from the recorder and ends with every message, in order; a client
whose recorder did not answer in time asks again on a new socket (bus.request)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace

import msgpack
import pytest

from tickmesh.bus import sockets
from tickmesh.bus.gapfill import GapFiller, GapFillUnavailable
from tickmesh.bus.topics import topic
from tickmesh.consumers.recorder import archive
from tests.conftest import wait_for_forwarder
from tests.recorded import (go, prices, records, start_publisher, start_recorder,
                            wait_recording)
from tests.waiting import wait_until

COUNT = 10_000
CONSUMER = """
import json, sys
from tickmesh.bus import Subscriber
sub = Subscriber(sys.argv[1], ["trade.test"], rcvhwm=100, fill_gaps=True,
                 gapfill_endpoint=sys.argv[2])
seqs, told = [], []
sub.on_gap = lambda gap: told.append(gap.missed)
for event in sub:
    if event.symbol == "WARM" and not seqs:
        if not told:
            print("ready", flush=True)
            told.append(0)
        continue
    if event.symbol == "DATA":
        if event.price < 0:
            break
        seqs.append(event.seq)
print(json.dumps({"seqs": seqs, "gaps": sub.gaps, "filled": sub.filled,
                  "unfilled": sum(told)}), flush=True)
"""


def test_a_dropped_consumer_fills_its_gap_from_the_recorder(spawn, spawn_child, bus_endpoints,
                                                            run_dir):
    bus = replace(bus_endpoints, subscriber_hwm=1000)  # the forwarder keeps little for a stopped consumer
    spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=bus)
    wait_for_forwarder(bus)
    directory, endpoint = run_dir / "rec", f"ipc://{run_dir}/gapfill"
    start_recorder(spawn_child, directory, gapfill_endpoint=endpoint, bus=bus)
    publisher = start_publisher(spawn, bus.publish, COUNT, 20_000)
    wait_recording(directory)
    consumer = spawn([sys.executable, "-c", CONSUMER, bus.subscribe, endpoint],
                     stdout=subprocess.PIPE, text=True)
    assert consumer.stdout.readline().strip() == "ready"

    os.kill(consumer.pid, signal.SIGSTOP)
    go(publisher)
    assert publisher.stdout.readline().strip() == f"done {COUNT}"
    wait_until(lambda: len(prices(directory)) > COUNT, timeout=15, what="the recorder to have all")
    os.kill(consumer.pid, signal.SIGCONT)

    result = json.loads(consumer.stdout.readline())
    assert result["seqs"] == list(range(1, COUNT + 1))
    assert result["gaps"] >= 1 and result["filled"] >= COUNT // 2
    assert result["unfilled"] == 0
    go(publisher)


def test_what_the_recorder_missed_too_is_reported_missing(spawn, spawn_child, forwarder,
                                                          run_dir):
    directory, endpoint = run_dir / "rec", f"ipc://{run_dir}/gapfill"
    start_recorder(spawn_child, directory, gapfill_endpoint=endpoint)
    publisher = start_publisher(spawn, forwarder.publish, 100, 10_000)
    wait_recording(directory)
    go(publisher)
    assert publisher.stdout.readline().strip() == "done 100"
    wait_until(lambda: len(prices(directory)) > 100, timeout=15, what="the trades recorded")
    epoch = _epoch(directory)
    filler = GapFiller(endpoint)
    data = topic("trade", "test", "DATA")
    fill = filler.fetch(data, epoch, 95, 200_000)  # more than it has, in several requests
    assert len(fill.payloads) > 5 and fill.missing and fill.missing[-1][1] == 200_000
    assert filler.fetch(data, epoch + 1, 1, 10).missing == [(1, 10)]  # another epoch
    assert filler.fetch(topic("trade", "test", "NONE"), epoch, 1, 3).missing == [(1, 3)]
    frames, outcome = archive.Archive(directory).answer(b"{not json")
    assert outcome == "bad_request" and b"error" in frames[0]
    filler.close()
    go(publisher)


def test_a_recorder_that_did_not_answer_in_time_is_asked_again_on_a_new_socket(run_dir):
    endpoint = f"ipc://{run_dir}/gapfill"
    recorder = sockets.reply_server(endpoint, blocking=True)
    gave_up = threading.Event()

    def serve() -> None:  # the first request answered only once its asker gave up
        recorder.recv()
        gave_up.wait(timeout=10)
        recorder.send(json.dumps({"found": 0, "missing": [[1, 3]]}).encode())  # to nobody
        recorder.recv()
        recorder.send_multipart([json.dumps({"found": 1, "missing": [[2, 3]]}).encode(), b"1"])

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    filler = GapFiller(endpoint, timeout=0.5)
    data = topic("trade", "test", "DATA")
    with pytest.raises(GapFillUnavailable, match=f"no recorder answered at {endpoint} within "
                       "0.5 s"):
        filler.fetch(data, 7, 1, 3)
    gave_up.set()
    fill = filler.fetch(data, 7, 1, 3)
    assert (fill.payloads, fill.missing) == ([b"1"], [(2, 3)])
    server.join(timeout=10)
    filler.close()
    recorder.close(linger=0)


def _epoch(directory) -> int:
    for record in records(directory):
        if record.topic == b"trade.test.DATA|":
            return msgpack.unpackb(record.data)["e"]
    raise AssertionError("no DATA trade recorded")
