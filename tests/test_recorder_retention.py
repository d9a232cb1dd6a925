"""The recorder's retention (keep_days, keep_bytes: the oldest day directories deleted, never
the day being written) and its free-space floor (min_free_bytes: writing stops, with the
recording_failed alert), with a real recorder process and real files."""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path

import pytest

from tickmesh.bus import Alert, Subscriber
from tickmesh.consumers.recorder.recorder import Settings
from tickmesh.runtime.settings import SettingsError, read
from tests.recorded import records
from tests.waiting import wait_until

OLD_DAYS = ["2020-01-01", "2020-01-02", "2020-01-03"]
DAY_BYTES = 100_000


def _old_days(directory: Path) -> None:
    for name in OLD_DAYS:
        day = directory / name
        day.mkdir(parents=True)
        (day / "0000000000000000001.tmrec").write_bytes(b"\0" * DAY_BYTES)


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _start(spawn_child, directory: Path, log: Path, **settings):
    return spawn_child("tickmesh.consumers.recorder", "recorder",
                       {"directory": str(directory), "check_s": 0.1, **settings},
                       stderr=log.open("w"))


def _days(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def _recording_today(directory: Path) -> bool:
    return (directory / _today()).is_dir() and bool(records(directory / _today()))


def test_days_older_than_keep_days_are_deleted_and_logged(spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    _old_days(directory)
    log = run_dir / "recorder.log"
    recorder = _start(spawn_child, directory, log, keep_days=2)
    wait_until(lambda: _days(directory) == [_today()] and _recording_today(directory),
               timeout=15, what="the old days deleted, today recorded")
    wait_until(lambda: log.read_text().count("recording day deleted") == 3, timeout=10,
               what="each deleted day logged")
    assert "2020-01-01" in log.read_text()
    assert recorder.poll() is None


def test_oldest_days_beyond_keep_bytes_are_deleted_first(spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    _old_days(directory)
    log = run_dir / "recorder.log"
    recorder = _start(spawn_child, directory, log, keep_bytes=int(DAY_BYTES * 1.5))
    wait_until(lambda: _days(directory) == ["2020-01-03", _today()]
               and _recording_today(directory), timeout=15,
               what="the two oldest days deleted, the newest old one kept")
    wait_until(lambda: log.read_text().count("recording day deleted") == 2, timeout=10,
               what="each deleted day logged")
    assert recorder.poll() is None


def test_the_day_being_written_is_never_deleted(spawn_child, forwarder, run_dir):
    directory = run_dir / "rec"
    log = run_dir / "recorder.log"
    recorder = _start(spawn_child, directory, log, keep_bytes=1, keep_days=1)
    wait_until(lambda: _recording_today(directory), timeout=15, what="today recorded")
    before = len(records(directory))
    wait_until(lambda: len(records(directory)) > before + 2, timeout=15,
               what="more heartbeats recorded past a keep_bytes it exceeds")
    assert _days(directory) == [_today()]
    assert "recording day deleted" not in log.read_text()
    assert recorder.poll() is None


def test_below_the_free_space_floor_writing_stops_with_the_alert(spawn_child, forwarder,
                                                                 run_dir):
    directory = run_dir / "rec"
    log = run_dir / "recorder.log"
    alerts = Subscriber(forwarder.subscribe, ["alert.recorder"])
    recorder = _start(spawn_child, directory, log, min_free_bytes=2 ** 62, retry_s=0.2)
    raised = wait_until(lambda: alerts.recv(timeout=0.05), timeout=20, what="an alert")
    assert isinstance(raised, Alert) and raised.state == "raised"
    assert raised.what == "recording_failed" and "min_free_bytes" in raised.message
    assert records(directory) == []  # nothing written: the floor is above the disk's free space
    assert recorder.poll() is None
    alerts.close()


@pytest.mark.parametrize("key, value", [("keep_days", -1), ("keep_bytes", -5),
                                        ("min_free_bytes", -1), ("check_s", 0)])
def test_bad_retention_settings_name_the_key(key, value):
    with pytest.raises(SettingsError, match=f"settings.{key}:"):
        Settings(directory="rec", **{key: value})


def test_the_demo_config_turns_retention_and_the_floor_on():
    config = tomllib.loads((Path(__file__).parent.parent / "config/default.toml").read_text())
    [child] = [c for c in config["children"] if c["name"] == "recorder"]
    settings = read(Settings, child["settings"])
    assert settings.keep_days >= 1 and settings.keep_bytes > 0 and settings.min_free_bytes > 0
