"""A counting consumer (tests/test_across_machines.py): reads every message on the bus, undecoded,
on every line (bus.lines keeps the first copy of each), and keeps, per topic and publisher
epoch, the first and last sequence number received, how many, and every number that was not
the last one + 1 (a duplicate, or a gap); the gaps its subscriber told (`on_gap`); and every
book_status it received, decoded. Every REPORT_SECONDS, and once more when it stops, it writes
all of that as JSON to settings["report"] (a new file renamed over the old one: a reader never
sees half of it):

    {"received", "rate", "topics": {"TOPIC EPOCH": [first, last, count]}, "anomalies",
     "out_of_order": [[topic, epoch, previous, seq], ...] (the first 100),
     "gaps": [[topic, epoch, expected, received], ...],
     "statuses": [[at_ns, symbol, state, message], ...], "line_first": [a, b],
     "line_duplicates", "duplicates", "stale_epoch", "at_ns", "final"}
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickmesh.bus import events
from tickmesh.bus.messages import RawMessage
from tickmesh.bus.subscriber import AsyncSubscriber, Gap
from tickmesh.runtime.process import ProcessContext, run

REPORT_SECONDS = 0.25
KEPT = 100  # out-of-order numbers listed (all are counted)
STATUS = b"book_status."


@dataclass(frozen=True)
class Settings:
    report: str


@dataclass
class Count:
    """What was received, per (topic, epoch)."""

    topics: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    out_of_order: list[list[Any]] = field(default_factory=list)
    anomalies: int = 0
    received: int = 0
    gaps: list[list[Any]] = field(default_factory=list)
    statuses: list[list[Any]] = field(default_factory=list)

    def add(self, message: RawMessage) -> None:
        self.received += 1
        key = (message.topic.decode(errors="replace"), message.epoch)
        seen = self.topics.get(key)
        if seen is None:
            self.topics[key] = [message.seq, message.seq, 1]
        else:
            if message.seq != seen[1] + 1:
                self._anomaly(key, seen[1], message.seq)
            seen[1], seen[2] = message.seq, seen[2] + 1
        if message.topic.startswith(STATUS):
            status = events.decode(message.payload)
            self.statuses.append([time.time_ns(), status.symbol, status.state, status.message])

    def _anomaly(self, key: tuple[str, int], previous: int, seq: int) -> None:
        self.anomalies += 1
        if len(self.out_of_order) < KEPT:
            self.out_of_order.append([*key, previous, seq])

    def gap(self, gap: Gap) -> None:
        self.gaps.append([gap.topic.decode(errors="replace"), gap.epoch, gap.expected,
                          gap.received])


def report(count: Count, sub: AsyncSubscriber, rate: float, final: bool) -> dict[str, Any]:
    return {"received": count.received, "rate": rate, "anomalies": count.anomalies,
            "topics": {f"{topic} {epoch}": seen for (topic, epoch), seen in count.topics.items()},
            "out_of_order": count.out_of_order, "gaps": count.gaps, "statuses": count.statuses,
            "line_first": list(sub.arbiter.first) if sub.arbiter else [],
            "line_duplicates": sub.arbiter.duplicates if sub.arbiter else 0,
            "duplicates": sub.tracker.duplicates, "stale_epoch": sub.tracker.stale_epoch,
            "at_ns": time.time_ns(), "final": final}


def write(path: Path, content: dict[str, Any]) -> None:
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(json.dumps(content))
    os.replace(fresh, path)


async def count(ctx: ProcessContext[Settings]) -> None:
    path, tally = Path(ctx.settings.report), Count()
    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, raw=True, on_gap=tally.gap,
                          rcvhwm=ctx.spec.bus.receive_hwm)
    last_at, last_received, rate = time.monotonic(), 0, 0.0
    try:
        async for batch in sub.batches():
            for message in batch:
                tally.add(message)
            now = time.monotonic()
            if now - last_at >= REPORT_SECONDS:
                rate = (tally.received - last_received) / (now - last_at)
                last_at, last_received = now, tally.received
                write(path, report(tally, sub, rate, final=False))
    finally:
        write(path, report(tally, sub, rate, final=True))
        sub.close()


def main() -> None:
    run(count, Settings)


if __name__ == "__main__":
    main()
