"""Capped exponential backoff with equal jitter, for reconnect loops.

The n-th delay (from 0) is uniform in [d/2, d] with d = min(maximum, minimum * 2**n): spread out
so that many clients do not reconnect in step, and never shorter than the previous delay's
upper bound halved, so consecutive waits keep growing until the cap.

`BackoffSettings` are the keys of a handler's settings table that set it: backoff_min,
backoff_max, and stable_after (how long a subscribed connection must last before its end
resets the backoff: handlers.common.lifecycle).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from tickmesh.runtime.settings import require


class Backoff:
    def __init__(self, minimum: float, maximum: float,
                 rng: Callable[[], float] | None = None) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"backoff needs 0 < minimum <= maximum, got {minimum}, {maximum}")
        self.minimum = minimum
        self.maximum = maximum
        self.attempt = 0
        self._rng = rng or random.random

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        ceiling = min(self.maximum, self.minimum * 2 ** min(self.attempt, 64))
        self.attempt += 1
        return ceiling / 2 + self._rng() * ceiling / 2

    def reset(self) -> None:
        """The connection became healthy: start again from the minimum."""
        self.attempt = 0


@dataclass(frozen=True, kw_only=True)
class BackoffSettings:
    """A reconnecting handler's settings: its waits grow from backoff_min to backoff_max s,
    and start again from backoff_min only after a connection that stayed subscribed for
    stable_after s."""

    backoff_min: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 30.0

    def __post_init__(self) -> None:
        require(0 < self.backoff_min <= self.backoff_max, "backoff_min",
                f"a number > 0 and <= backoff_max ({self.backoff_max:g})", self.backoff_min)
        require(self.stable_after >= 0, "stable_after", "a number >= 0", self.stable_after)

    def backoff(self) -> Backoff:
        return Backoff(self.backoff_min, self.backoff_max)
