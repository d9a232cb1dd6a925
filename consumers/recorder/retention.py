"""The recorder's retention and free-space floor, looked at every `check_s` (never per event).

Retention deletes whole day directories (RECORDING/YYYY-MM-DD), oldest first: those older
than the `keep_days` most recent UTC days (today counted), then more while the recording's
total size is above `keep_bytes`. The day being written (today's, and the open segment's) is
never deleted. 0 turns either off.

The free-space floor: when the recording's filesystem has less than `min_free_bytes`
available (os.statvfs), the recorder stops writing as when a write fails (the
`recording_failed` alert, events counted lost), and writes again once there is room.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from tickmesh.consumers.recorder.recording import day_name

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Deleted:
    day: str
    size: int  # bytes
    why: str  # "keep_days" or "keep_bytes"


def day_sizes(root: Path) -> list[tuple[str, int]]:
    """(name, bytes) of each day directory, oldest first."""
    try:
        entries = [e for e in os.scandir(root) if e.is_dir() and DAY.fullmatch(e.name)]
    except FileNotFoundError:
        return []
    return sorted((e.name, _size(Path(e.path))) for e in entries)


def _size(directory: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def expire(root: Path, today: int, writing: int | None, keep_days: int,
           keep_bytes: int) -> list[Deleted]:
    """Delete the day directories past keep_days, then the oldest while the total is above
    keep_bytes; never `today` (a day number), `writing` (the open segment's) or later ones."""
    days = day_sizes(root)
    protected = {day_name(today)} | ({day_name(writing)} if writing is not None else set())
    newest_kept = day_name(today - keep_days + 1) if keep_days else ""
    total = sum(size for _, size in days)
    deleted: list[Deleted] = []
    for name, size in days:
        if name in protected or name >= day_name(today):
            break
        if keep_days and name < newest_kept:
            why = "keep_days"
        elif keep_bytes and total > keep_bytes:
            why = "keep_bytes"
        else:
            break
        shutil.rmtree(root / name, ignore_errors=True)
        if (root / name).exists():
            break  # could not delete it: try again at the next check
        total -= size
        deleted.append(Deleted(name, size, why))
    return deleted


def free_bytes(root: Path) -> int:
    """Bytes available (to an unprivileged user) on the filesystem of `root` (or of its
    nearest existing parent)."""
    path = root
    while not path.exists() and path.parent != path:
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize
