"""The log files: each process's output (a child's stdout and stderr, the supervisor's own log)
in NAME.log under the log dir, rotated once a line would take it past `max_bytes`: NAME.log
becomes NAME.log.1, NAME.log.1 becomes NAME.log.2 ..., keeping `backups` of them. The dir is
made mode 0700, each file 0600: logs may say more than anyone else should read.

`LogFiles.write` is called from one thread only (supervisor.output's file writer), each line
written whole with one write(). `path`, `rotated` and `names` are what `tickmesh logs` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

from tickmesh.runtime.logs import write_whole

SUFFIX = ".log"


def path(directory: Path, name: str) -> Path:
    """Process `name`'s current log file."""
    return directory / f"{name}{SUFFIX}"


def rotated(directory: Path, name: str, index: int) -> Path:
    """Its `index`th most recent rotated file (1: the last one rotated)."""
    return directory / f"{name}{SUFFIX}.{index}"


def names(directory: Path) -> list[str]:
    """The processes that have a log file in `directory`."""
    return sorted(found.name[:-len(SUFFIX)] for found in directory.glob(f"*{SUFFIX}"))


class LogFiles:
    """Every process's rotating log file in `directory` (made private here, at once)."""

    def __init__(self, directory: Path, max_bytes: int, backups: int) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        self.directory = directory
        self.max_bytes = max_bytes
        self.backups = backups
        self._files: dict[str, _RotatingFile] = {}

    def write(self, name: str, line: bytes) -> None:
        """Append `line` (its newline included) to process `name`'s file; OSError."""
        if name not in self._files:
            self._files[name] = _RotatingFile(self, name)
        self._files[name].write(line)

    def close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files.clear()


class _RotatingFile:
    def __init__(self, files: LogFiles, name: str) -> None:
        self.files = files
        self.name = name
        self.fd = -1
        self.size = 0
        self._open()

    def write(self, line: bytes) -> None:
        if self.size and self.size + len(line) > self.files.max_bytes:
            self._rotate()
        write_whole(self.fd, line)
        self.size += len(line)

    def close(self) -> None:
        os.close(self.fd)

    def _open(self) -> None:
        self.fd = os.open(path(self.files.directory, self.name),
                          os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(self.fd, 0o600)  # one made before, by another umask or another program
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        self.close()
        directory, name = self.files.directory, self.name
        shifted = [(rotated(directory, name, index), rotated(directory, name, index + 1))
                   for index in range(self.files.backups - 1, 0, -1)]
        for older, newer in [*shifted, (path(directory, name), rotated(directory, name, 1))]:
            try:
                older.replace(newer)
            except FileNotFoundError:
                pass  # fewer rotations so far, or removed by hand
        self._open()
