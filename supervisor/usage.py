"""CPU and memory of the supervised processes, by pid, read with psutil: for `tickmesh status`
(CPU % since the previous status, or since the process started the first time it is asked)
and the Prometheus endpoint (CPU seconds and resident memory).

A psutil.Process is kept per pid while that pid is asked about; one not asked about in a
measurement (the child exited, or restarted with a new pid) is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import psutil


@dataclass(frozen=True)
class Measured:
    cpu_seconds: float  # user + system, since the process started
    rss_bytes: int
    started: float  # unix s


class Usage:
    def __init__(self) -> None:
        self._processes: dict[int, psutil.Process] = {}
        self._marks: dict[int, tuple[float, float]] = {}  # pid -> (when, cpu s) at last percent

    def measure(self, pids: Iterable[int]) -> dict[int, Measured]:
        """Each of `pids` that is still there; every other pid is forgotten."""
        wanted = set(pids)
        for pid in set(self._processes) - wanted:
            del self._processes[pid]
            self._marks.pop(pid, None)
        found = {}
        for pid in wanted:
            measured = self._measure(pid)
            if measured is not None:
                found[pid] = measured
        return found

    def cpu_percent(self, pid: int, measured: Measured, now: float) -> float:
        """CPU % of one core since this was last asked for `pid` (first: since it started)."""
        since, before = self._marks.get(pid, (measured.started, 0.0))
        self._marks[pid] = (now, measured.cpu_seconds)
        return round(100 * (measured.cpu_seconds - before) / max(now - since, 1e-3), 1)

    def _measure(self, pid: int) -> Measured | None:
        try:
            process = self._processes.get(pid) or psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                measured = Measured(times.user + times.system, process.memory_info().rss,
                                    process.create_time())
        except psutil.Error:
            self._processes.pop(pid, None)
            self._marks.pop(pid, None)
            return None
        self._processes[pid] = process
        return measured
