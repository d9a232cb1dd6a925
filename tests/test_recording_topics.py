"""The recorder's per-topic state is bounded (issue 16: a rogue publisher of 1,000,000
distinct topics grew it to 426 MB, never freed): the recorder tracks at most `max_topics`
topics (its subscriber's bus.sequence tracker); for a further topic the one tracked longest
ago is forgotten (`bus_topics_evicted`, told once in a log line), and every message is still
recorded."""

from __future__ import annotations

import subprocess
import sys

from tickmesh.bus import Heartbeat, Subscriber
from tickmesh.consumers.recorder.recording import GAP
from tests.recorded import records
from tests.waiting import wait_until

ROGUE = """
import sys, time
from tickmesh.bus import Publisher, Trade
publisher = Publisher(sys.argv[1])
now = time.time_ns()
for i in range(int(sys.argv[2])):
    publisher.publish(Trade(provider="rogue", symbol=f"R{i}", ts_event=now, ts_recv=now,
                            price=1.0, size=1.0))
    if i % 1000 == 999:
        time.sleep(0.002)  # the recorder keeps up: none is lost on the way
publisher.close(linger_ms=10_000)
print("done", flush=True)
"""
TOPICS = 200_000
MAX_TOPICS = 1000
GROWTH_MB = 25  # unbounded, 200,000 topics hold ~60 MB


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kb / 1024


def test_a_flood_of_topics_is_bounded_counted_and_told_once(spawn, spawn_child, forwarder,
                                                            run_dir):
    directory, log = run_dir / "rec", run_dir / "recorder.log"
    beats = Subscriber(forwarder.subscribe, ["heartbeat.recorder"])
    with log.open("w") as stderr:
        recorder = spawn_child("tickmesh.consumers.recorder", "recorder", {
            "directory": str(directory), "max_topics": MAX_TOPICS}, stderr=stderr)

    def beat(enough: str, at_least: float) -> Heartbeat | None:
        assert recorder.poll() is None, log.read_text()
        heartbeat = beats.recv(timeout=0.1)
        return heartbeat if heartbeat is not None and \
            heartbeat.metric(enough) >= at_least else None

    wait_until(lambda: beat("recorder_events_written", 1), timeout=15, what="the recorder")
    before = rss_mb(recorder.pid)
    rogue = spawn([sys.executable, "-c", ROGUE, forwarder.publish, str(TOPICS)],
                  stdout=subprocess.PIPE, text=True)
    assert rogue.stdout.readline().strip() == "done"
    flooded = wait_until(lambda: beat("bus_topics_evicted", TOPICS - MAX_TOPICS + 1),
                         timeout=30, what="the recorder to evict the topics beyond max_topics")
    assert rss_mb(recorder.pid) - before < GROWTH_MB
    told = [line for line in log.read_text().splitlines() if "max_topics" in line]
    assert len(told) == 1, log.read_text()

    written = flooded.metric("recorder_events_written")
    wait_until(lambda: beat("recorder_events_written", written + 1), timeout=15,
               what="recording to go on (the heartbeat topics it tracks)")
    rogue_topics = {r.topic for r in records(directory) if r.topic.startswith(b"trade.rogue.")}
    assert len(rogue_topics) == TOPICS  # every one recorded
    assert not [r for r in records(directory) if r.type == GAP]
    beats.close()
