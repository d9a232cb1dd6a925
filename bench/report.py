"""Benchmark results: the scenario rows, the table printed for people, and results.json
(`{"commit", "machine", "scenarios": [...]}`) for the README and for later comparisons."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.processes import REPO


@dataclass(frozen=True)
class Scenario:
    name: str
    metric: str
    unit: str
    ours: float
    peer: float
    peer_name: str
    ratio: float
    """Oriented so that higher is better for us."""
    target: float | None
    met: bool | None


def scenario(name: str, metric: str, unit: str, ours: float, peer: float, peer_name: str, *,
             higher_is_better: bool, target: float | None) -> Scenario:
    ratio = ours / peer if higher_is_better else peer / ours
    met = None if target is None else ratio >= target
    return Scenario(name, metric, unit, round(ours, 2), round(peer, 2), peer_name,
                    round(ratio, 2), target, met)


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
    header = ("scenario", "unit", "tickmesh", "peer", "ratio", "target", "met")
    rows = [header] + [
        (s.name, s.unit, f"{s.ours:,.2f}", f"{s.peer:,.2f}", f"{s.ratio:.2f}x",
         "-" if s.target is None else f">= {s.target:g}x",
         "-" if s.met is None else ("yes" if s.met else "NO"))
        for s in scenarios
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for name in dict.fromkeys(s.peer_name for s in scenarios):
        print(f"peer: {name}")


def write_results(path: Path, scenarios: list[Scenario]) -> None:
    document = {"commit": commit(), "machine": machine(),
                "scenarios": [asdict(s) for s in scenarios]}
    path.write_text(json.dumps(document, indent=2) + "\n")
