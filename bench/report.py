"""Benchmark results: the scenario rows, the table printed for people, and results.json
(`{"commit", "machine", "scenarios": [...]}`, each scenario's record with the commit and the
machine too) for the README and for later comparisons."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.processes import REPO


@dataclass(frozen=True)
class Scenario:
    """One figure of one scenario, as results.json holds it.

    `ours`, `peer` and `ratio` are medians over the runs (`runs`); the ratio is taken in each
    run, between the two sides of that run, then its median. `ratio` is oriented so that higher
    is better for us. `target` applies to the ratio (`target_on` "ratio": met if ratio >=
    target) or to our own figure (`target_on` "ours", in `unit`: met if ours <= target where
    lower is better, >= where higher is); None: a figure without a target. `spread`: [min, max]
    over the runs of ours, the peer and the ratio. `details`: what else the scenario saw."""

    name: str
    metric: str
    unit: str
    ours: float
    peer: float | None
    peer_name: str
    ratio: float | None
    target: float | None
    met: bool | None
    target_on: str = "ratio"
    higher_is_better: bool = True
    runs: int = 1
    spread: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] | None = None


Values = float | Sequence[float]


def scenario(name: str, metric: str, unit: str, ours: Values, peer: Values | None,
             peer_name: str, *, higher_is_better: bool, target: float | None,
             target_on: str = "ratio", details: dict[str, Any] | None = None) -> Scenario:
    """A record from each run's figures (one float: one run); `peer` None: no peer."""
    ours_runs = _runs(ours)
    peer_runs = _runs(peer) if peer is not None else []
    if peer_runs and len(peer_runs) != len(ours_runs):
        raise ValueError(f"{name}: {len(ours_runs)} runs of ours, {len(peer_runs)} of the peer")
    ratios = [(o / p if higher_is_better else p / o) if o and p else 0.0
              for o, p in zip(ours_runs, peer_runs)]
    median_ours = statistics.median(ours_runs)
    ratio = statistics.median(ratios) if ratios else None
    if target is None:
        met = None
    elif target_on == "ratio":
        met = ratio is not None and ratio >= target
    else:
        met = median_ours >= target if higher_is_better else median_ours <= target
    spread = {"ours": _min_max(ours_runs)}
    if peer_runs:
        spread.update(peer=_min_max(peer_runs), ratio=_min_max(ratios))
    return Scenario(name, metric, unit, round(median_ours, 2),
                    round(statistics.median(peer_runs), 2) if peer_runs else None, peer_name,
                    round(ratio, 2) if ratio is not None else None, target, met, target_on,
                    higher_is_better, len(ours_runs), spread, details)


def _runs(values: Values) -> list[float]:
    runs = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if not runs:
        raise ValueError("no runs")
    return runs


def _min_max(values: list[float]) -> list[float]:
    return [round(min(values), 2), round(max(values), 2)]


def commit() -> str:
    """The checked-out commit, "-dirty" if the working tree has changes; "unknown" outside git."""
    result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                            cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def machine() -> str:
    """e.g. "Linux-6.1-x86_64, AMD EPYC, 2 cores, Python 3.11.7"."""
    return (f"{platform.platform(terse=True)}, {_cpu_model()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_table(scenarios: list[Scenario]) -> None:
    """One line a figure: medians, the ratio, ours' spread over the runs, the target."""
    header = ("scenario", "unit", "tickmesh", "peer", "ratio", "ours min-max", "target", "met")
    rows = [header] + [
        (s.name, s.unit, _number(s.ours), "-" if s.peer is None else _number(s.peer),
         "-" if s.ratio is None else f"{s.ratio:.2f}x",
         "-" if s.runs < 2 else "-".join(_number(v) for v in s.spread["ours"]),
         _target(s), "-" if s.met is None else ("yes" if s.met else "NO"))
        for s in scenarios
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("peers:")
    for name in dict.fromkeys(s.peer_name for s in scenarios if s.peer_name):
        print(f"  {name}")


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"


def _target(s: Scenario) -> str:
    if s.target is None:
        return "-"
    if s.target_on == "ratio":
        return f">= {s.target:g}x"
    return f"{'>=' if s.higher_is_better else '<='} {s.target:g} {s.unit}"


def write_results(path: Path, scenarios: list[Scenario]) -> None:
    """results.json: the run's commit and machine, and each record carrying them too (a record
    copied out of the file still says where and on what it was measured)."""
    where = {"commit": commit(), "machine": machine()}
    document = {**where, "scenarios": [{**asdict(s), **where} for s in scenarios]}
    path.write_text(json.dumps(document, indent=2) + "\n")
