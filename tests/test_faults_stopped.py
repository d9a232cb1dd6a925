"""Fault suite, a stopped consumer: the bar builder SIGSTOPped for 30 s while the Alpaca simulator
and handler run at a raised rate, with the recorder and a test subscriber reading everything.
The handler's publish rate stays flat and its memory (and the forwarder's) stays bounded, the
other consumers see no gap, and the stopped one reports its gap once it resumes.

Memory bounds: nothing upstream of the forwarder queues for a slow subscriber (sends never
block; libzmq drops at the forwarder's per-subscriber high-water mark), so the handler's RSS
may grow only by allocator noise: 16 MiB allowed. The forwarder holds at most HWM messages for
the stopped subscriber (8,000 of ~250 bytes, ~2 MB, with libzmq's per-message overhead under
4 MB) besides the kernel's socket buffers: 32 MiB allowed, 10x the worst we can account for,
and still far below what an unbounded queue of 30 s at this rate (~120,000 messages) takes."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tickmesh.bus import Heartbeat, Quote, Trade
from tickmesh.bus.sockets import BusConfig
from tickmesh.consumers.recorder.recording import GAP
from tests import simulators
from tests.buslog import BusLog
from tests.conftest import wait_for_forwarder
from tests.recorded import records

HWM = 8000
RATE = 4000  # messages a second from the simulator, trades and quotes
STOP_S = 30.0
MiB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def published(beat: Heartbeat) -> float:
    return sum(beat.metric("events_published", kind=kind, provider="alpaca")
               for kind in ("trade", "quote"))


@pytest.mark.timeout(90)
def test_a_consumer_stopped_for_30_s_costs_nothing_upstream_and_reports_its_gap(
        spawn_child, run_dir):
    bus = BusConfig(f"ipc://{run_dir}/publish", f"ipc://{run_dir}/subscribe", hwm=HWM,
                    subscriber_hwm=HWM)
    forwarder = spawn_child("tickmesh.runtime.forwarder", "forwarder", bus=bus)
    wait_for_forwarder(bus)
    directory = run_dir / "rec"
    spawn_child("tickmesh.consumers.recorder", "recorder", {"directory": str(directory)}, bus=bus)
    port, _ = simulators.start(spawn_child, "tickmesh.handlers.alpaca.sim.server", "alpaca-sim", None,
                               {"rate": RATE, "symbols": ["AAPL", "MSFT"]})
    with BusLog(bus.subscribe, ["trade.alpaca", "quote.alpaca", "heartbeat.alpaca",
                                "heartbeat.bars"]) as log:
        bars = spawn_child("tickmesh.consumers.bars", "bars", {"intervals": ["1s"]}, bus=bus)
        log.until(lambda _: log.heartbeats("bars"), what="the bar builder running")
        handler = spawn_child("tickmesh.handlers.alpaca.handler", "alpaca",
                              {"url": f"ws://127.0.0.1:{port}/v2/iex",
                               "symbols": ["AAPL", "MSFT"]}, bus=bus)

        log.until(lambda _: len(log.heartbeats("alpaca")) >= 3
                  and published(log.heartbeat("alpaca")) > 0, what="the handler publishing for 2 s")
        baseline = rss(handler.pid), rss(forwarder.pid)
        start, before = time.monotonic(), log.heartbeat("alpaca")
        bars.send_signal(signal.SIGSTOP)
        peak = list(baseline)

        def stopped_long_enough(_) -> bool:
            peak[0] = max(peak[0], rss(handler.pid))
            peak[1] = max(peak[1], rss(forwarder.pid))
            return time.monotonic() - start >= STOP_S

        log.until(stopped_long_enough, timeout=STOP_S + 15, what="30 s of the stopped consumer")
        during = [b for b in log.heartbeats("alpaca") if b.ts_event > before.ts_event]
        bars.send_signal(signal.SIGCONT)
        gapped = log.until(lambda _: [b for b in log.heartbeats("bars")
                                      if b.metric("bus_gaps") >= 1],
                           what="the bar builder reporting its gap", timeout=15)[-1]

    # the stopped consumer lost far more than every queue on its way holds, and says so
    assert gapped.metric("bus_messages_missed") > 0
    # the handler's publish rate: flat across the stop (per second, heartbeat to heartbeat)
    rates = [(published(b) - published(a)) / ((b.ts_event - a.ts_event) / 1e9)
             for a, b in zip(during, during[1:])]
    first, last = sum(rates[:10]) / 10, sum(rates[-10:]) / 10
    assert len(rates) >= 25 and 0.7 < last / first < 1.4, rates
    assert first > RATE / 2, rates  # at the simulator's rate, not throttled
    # memory: bounded (see the module's docstring)
    assert peak[0] - baseline[0] < 16 * MiB, (baseline, peak)
    assert peak[1] - baseline[1] < 32 * MiB, (baseline, peak)
    # the other consumers saw no gap: the test subscriber, and the recorder (no gap record)
    assert log.sub.gaps == 0 and len(log.of(Trade)) + len(log.of(Quote)) > RATE * STOP_S / 2
    assert not [r for r in records(directory) if r.type == GAP]
    assert handler.poll() is None and bars.poll() is None
