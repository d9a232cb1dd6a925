"""The recorder writes a GAP record at its place: after the last message before the loss, and
before the message that revealed it, even when the whole burst is read in one batch."""

from __future__ import annotations

import signal

import msgpack

from tickmesh.bus import Publisher, Trade
from tickmesh.bus.events import encode
from tickmesh.bus.topics import topic
from tickmesh.consumers.recorder.recording import GAP, GAP_DATA, MESSAGE
from tests.recorded import records, start_recorder
from tests.waiting import wait_until

TOPIC = topic("trade", "test", "DATA")


def trade(seq: int, epoch: int) -> bytes:
    event = Trade(provider="test", symbol="DATA", ts_event=1, ts_recv=1, price=float(seq),
                  size=1.0)
    event.seq, event.epoch = seq, epoch
    return encode(event)


def test_the_gap_record_is_written_at_its_place(forwarder, spawn_child, run_dir):
    directory = run_dir / "rec"
    recorder = start_recorder(spawn_child, directory, bus=forwarder)
    publisher = Publisher(forwarder.publish)
    epoch = publisher.epoch
    warm = iter(range(1, 10**6))
    wait_until(lambda: publisher.publish_raw(TOPIC, trade(next(warm), epoch - 1))
               or any(r.topic == TOPIC for r in records(directory)), timeout=15,
               what="the recorder to record")
    recorder.send_signal(signal.SIGSTOP)  # busy: the burst is read in one batch
    try:
        for seq in (1, 2, 3, 7, 8):  # 4 to 6 lost
            publisher.publish_raw(TOPIC, trade(seq, epoch))
    finally:
        recorder.send_signal(signal.SIGCONT)
    told = wait_until(lambda: (found := recorded(directory)) and found[-1] == 8 and found,
                      timeout=15, what="the burst recorded")
    assert told[-6:] == [1, 2, 3, ("gap", 4, 3), 7, 8]
    publisher.close()


def recorded(directory) -> list:
    """The topic's records so far: each message's seq, each gap as ("gap", first, count)."""
    told: list = []
    for record in records(directory):
        if record.topic != TOPIC:
            continue
        if record.type == GAP:
            _epoch, first, count = GAP_DATA.unpack(record.data)
            told.append(("gap", first, count))
        elif record.type == MESSAGE:
            told.append(msgpack.unpackb(record.data)["q"])
    return told
