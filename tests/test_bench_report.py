"""`make bench`'s records (bench/report.py, bench/latency.py): each record says where and on what
commit it was measured, and the latency targets sit on the rows issue 21 names, no others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import latency
from bench.report import scenario, write_results

pytestmark = pytest.mark.timeout(30)


def test_every_record_says_the_commit_and_the_machine(tmp_path: Path) -> None:
    rows = [scenario("a", "a figure", "x/s", [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], "peer",
                     higher_is_better=True, target=1.5),
            scenario("b", "another", "µs", 4.0, None, "", higher_is_better=False, target=None)]
    path = tmp_path / "results.json"
    write_results(path, rows)
    document = json.loads(path.read_text())
    assert document["commit"] and document["machine"]
    for record in document["scenarios"]:
        assert (record["commit"], record["machine"]) == (document["commit"], document["machine"])
    assert "cores" in document["machine"] and "Python" in document["machine"]
    assert [r["met"] for r in document["scenarios"]] == [True, None]


def fake_phase_results() -> list[dict]:
    phase = {"e2e": [100.0, 200.0, 300.0], "hop": [50.0, 100.0], "count": 10}
    return [{"phases": {str(n): phase for n in range(1, len(latency.combos()) + 1)}}]


def test_latency_targets_only_where_the_issue_sets_them() -> None:
    rows = latency.scenarios(fake_phase_results(), fake_phase_results(), 1.0)
    targeted = {row.name: (row.target, row.target_on) for row in rows if row.target is not None}
    assert targeted == {
        "latency-10k-x1-p50": (latency.P50_TARGET, "ratio"),
        "latency-10k-tick200-hop-p50": (latency.P50_TARGET, "ratio"),
        "latency-10k-tick200-p99": (latency.P99_TARGET_US, "ours"),
        "latency-10k-x10-p99": (latency.P99_TARGET_US, "ours"),
        "latency-10k-x1-p99": (latency.P99_TARGET_US, "ours"),
    }
