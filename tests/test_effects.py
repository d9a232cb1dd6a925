"""handlers.common.effects on a real event loop: timers replace each other by key and end
with the connection; resubscribes of a symbol are coalesced and back off while they repeat."""

from __future__ import annotations

import asyncio
from collections import Counter

import structlog

from tickmesh.handlers.common.effects import RESYNC_FIRST, Effects
from tickmesh.handlers.common.protocol import ClientProtocol, Output, Resubscribe, Timer


class Recorder(ClientProtocol):
    provider = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, float]] = []
        self.called = asyncio.Event()

    def start(self) -> Output:
        return Output()

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        return Output()

    def timer(self, key: str, ts: int) -> Output:
        return self._record("timer", key)

    def resubscribe(self, symbol: str) -> Output:
        return self._record("resubscribe", symbol)

    def _record(self, what: str, key: str) -> Output:
        self.calls.append((what, key, asyncio.get_running_loop().time()))
        self.called.set()
        return Output()


def effects_for(protocol: Recorder) -> Effects:
    return Effects(protocol, lambda call: call(), Counter(), structlog.get_logger())


async def next_call(protocol: Recorder, timeout: float = 5.0) -> tuple[str, str, float]:
    protocol.called.clear()
    await asyncio.wait_for(protocol.called.wait(), timeout)
    return protocol.calls[-1]


def test_a_timer_replaces_the_pending_one_with_its_key_and_close_cancels():
    async def scenario() -> list:
        protocol = Recorder()
        effects = effects_for(protocol)
        effects.run([Timer("t", 30.0)])
        effects.run([Timer("t", 0.01)])
        await next_call(protocol)
        effects.run([Timer("u", 0.05)])
        effects.close()
        effects.run([Timer("v", 0.01)])
        await next_call(protocol)
        return protocol.calls

    calls = asyncio.run(scenario())
    assert [(what, key) for what, key, _ in calls] == [("timer", "t"), ("timer", "v")]


def test_resubscribes_are_coalesced_per_symbol_and_back_off_while_they_repeat():
    async def scenario() -> tuple[list, list[float]]:
        protocol = Recorder()
        effects = effects_for(protocol)
        loop = asyncio.get_running_loop()
        waits = []
        for _ in range(3):
            asked = loop.time()
            effects.run([Resubscribe("X"), Resubscribe("X")])  # the second joins the first
            assert effects.pending_resubscribe("X")
            _, _, done = await next_call(protocol)
            waits.append(done - asked)
        return protocol.calls, waits

    calls, waits = asyncio.run(scenario())
    assert [(what, key) for what, key, _ in calls] == [("resubscribe", "X")] * 3
    # doubling, with equal jitter (the loop may fire a timer a clock tick early)
    assert waits[0] >= 0.95 * RESYNC_FIRST / 2 and waits[2] >= 0.95 * RESYNC_FIRST * 2
