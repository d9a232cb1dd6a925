"""Two bus lines on real forwarder processes: a publisher sends every message on both, a
subscriber reads both and keeps the first copy of each. Line A's forwarder is SIGKILLed under
a steady load, then started again: the reader gets every message exactly once, in order, with
no gap; both lines are seen delivering first, and the second copies are counted."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tickmesh.bus import Subscriber
from tickmesh.bus.sockets import BusConfig
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(90)
COUNT, RATE = 30_000, 5_000


def two_lines(run_dir: Path) -> BusConfig:
    return BusConfig(f"ipc://{run_dir}/a-pub", f"ipc://{run_dir}/a-sub",
                     publish_b=f"ipc://{run_dir}/b-pub", subscribe_b=f"ipc://{run_dir}/b-sub")


def start_forwarder(spawn_child, bus: BusConfig, line: str):
    name = "forwarder" if line == "A" else "forwarder-b"
    served = BusConfig(**{**bus.to_dict(), "forwarder": line})
    proc = spawn_child("tickmesh.runtime.forwarder", name, bus=served)
    ends = next(ln for ln in bus.lines if ln.name == line)
    for endpoint in (ends.publish, ends.subscribe):
        wait_until(Path(endpoint[len("ipc://"):]).exists, timeout=10, what=f"line {line} bound")
    return proc


def read_until(sub: Subscriber, prices: list[float], count: int, what: str) -> None:
    def more() -> bool:
        event = sub.recv(timeout=0.2)
        if event is not None and event.symbol == "DATA" and event.price >= 0:
            prices.append(event.price)
        return len(prices) >= count
    wait_until(more, timeout=30, what=what, interval=0)


def test_a_line_killed_under_load_costs_no_message(run_dir: Path, spawn, spawn_child) -> None:
    bus = two_lines(run_dir)
    line_a = start_forwarder(spawn_child, bus, "A")
    start_forwarder(spawn_child, bus, "B")
    sub = Subscriber(bus.subscribe_endpoints, ["trade.test.*"], heartbeat_timeout=0)
    gaps = []
    sub.on_gap = gaps.append
    publisher = spawn([sys.executable, "-m", "tests.bus_publisher", ",".join(bus.publish_endpoints),
                       "DATA", str(COUNT), str(RATE)], stdin=-1, stdout=-1, text=True)
    try:
        wait_until(lambda: sub.recv(timeout=0.1) and sub.arbiter.duplicates, timeout=10,
                   what="the publisher's warm-up trades on both lines", interval=0)
        publisher.stdin.write("go\n")
        publisher.stdin.flush()
        prices: list[float] = []
        read_until(sub, prices, COUNT // 5, "the first fifth")
        line_a.send_signal(signal.SIGKILL)
        line_a.wait(timeout=5)
        read_until(sub, prices, COUNT // 2, "half, on line B alone")
        start_forwarder(spawn_child, bus, "A")
        read_until(sub, prices, COUNT, "everything, line A back")
        assert prices == [float(i) for i in range(COUNT)]  # each once, in order
        assert gaps == []
        assert min(sub.arbiter.first) > 0  # both lines delivered first at times
        assert sub.arbiter.duplicates > COUNT // 4  # the second copies, dropped
    finally:
        publisher.stdin.write("quit\n")
        publisher.stdin.close()
        sub.close()

