"""Bad input, counted always and logged sparingly: at the 1st, 2nd, 4th, 8th... occurrence of
each kind, so that a flood of garbage cannot flood the log (the counter, which the heartbeat
publishes, keeps the exact number)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Hashable


def count_bad_input(counters: Counter, counter: Hashable, log: Any, event: str, **fields: Any) -> None:
    count = counters[counter] = counters[counter] + 1
    if count & (count - 1) == 0:
        log.warning(event, count=count, **fields)
