"""The supervisor's console: its own stdout and stderr, where the children's lines are shown
(a child's stdout on stdout, its stderr on stderr), each line whole, with one write().

On a terminal, JSON log lines are shown in the pretty console format (the children write JSON:
their output is a pipe, not a terminal); elsewhere every line passes through unchanged. A
console that goes away (`tickmesh run | head` done reading, a closed `tee`) is no longer
written, and the supervisor goes on: its log files still get everything.
"""

from __future__ import annotations

import os

import structlog

from tickmesh.runtime.logs import PrettyLines, write_whole

STDOUT, STDERR = 1, 2
NAMES = {STDOUT: "stdout", STDERR: "stderr"}


class Console:
    def __init__(self) -> None:
        self._pretty = {fd: PrettyLines() for fd in NAMES if os.isatty(fd)}
        self._closed: set[int] = set()

    def write(self, fd: int, line: bytes) -> None:
        """Show `line` (without its newline) on STDOUT or STDERR, unless that one is gone."""
        if fd in self._closed:
            return
        if fd in self._pretty:
            line = self._pretty[fd](line)
        try:
            write_whole(fd, line + b"\n")
        except OSError as exc:
            self._closed.add(fd)
            structlog.get_logger().warning("console gone: no longer written (the log files "
                                           "still are)", stream=NAMES[fd], error=str(exc))
