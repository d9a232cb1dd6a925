"""The children's output, relayed: each child writes its stdout and stderr to pipes of its own
(supervisor.launch), which the supervisor reads on its loop and cuts into whole lines (a line
split across reads is put back together; one longer than MAX_LINE is cut there and marked).
Each line goes to two writer threads: the console's (supervisor.console: a child's stdout to
the supervisor's stdout, its stderr to its stderr) and the log files' (supervisor.logfiles:
NAME.log), each writing it whole. The supervisor's own log lines take the same way (`sink`).

Nothing here waits for a writer: each has a bounded queue (MAX_QUEUED bytes), and a line that
does not fit is dropped and counted (log_lines_dropped{child, to}), so that a slow console or
disk never blocks the supervisor's loop, nor, through it, a child writing to its pipe. A line
a writer cannot write (a full disk) is counted the same way.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter, deque
from typing import Callable, Hashable, Iterable

from tickmesh.runtime.logs import Sink
from tickmesh.runtime.metrics import Metrics
from tickmesh.supervisor.config import Config
from tickmesh.supervisor.console import STDERR, STDOUT, Console
from tickmesh.supervisor.logfiles import LogFiles

MAX_LINE = 64 * 1024
"""Bytes of a line kept; the rest is dropped and the line marked."""
READ_SIZE = 64 * 1024
MAX_QUEUED = 16 * 1024 * 1024
"""Bytes of lines each writer may have waiting."""
CLOSE_SECONDS = 2.0
"""At the end: how long to wait for the children's pipes to close, then for each writer."""

Line = tuple[str, int, bytes]
"""(process name, STDOUT or STDERR, the line without its newline)"""


class Output:
    """The relay of every process's output to the console and the log files (`config`)."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        console = Console()
        self._writers = [_Writer("console", lambda line: console.write(line[1], line[2]))]
        if config.log_dir is not None:
            files = LogFiles(config.log_dir, config.log_max_bytes, config.log_backups)
            self._writers.append(_Writer("file", lambda line: files.write(line[0], line[2] + b"\n"),
                                         files.close))
        self._pipes: dict[int, asyncio.Future[None]] = {}  # read end: done at its end
        metrics.collect(self._dropped)

    def start(self) -> None:
        for writer in self._writers:
            writer.start()

    def sink(self, name: str) -> Sink:
        """Where process `name`'s own log lines go (the supervisor's: runtime.logs)."""
        return lambda line: self.line((name, STDERR, line.encode(errors="backslashreplace")))

    def line(self, line: Line) -> None:
        for writer in self._writers:
            writer.put(line)

    def attach(self, name: str, stdout: int, stderr: int) -> None:
        """Relay the child `name`'s output from these pipes' read ends (closed at their end)."""
        for fd, stream in ((stdout, STDOUT), (stderr, STDERR)):
            self._read(name, fd, stream)

    async def close(self) -> None:
        """Relay what the children's pipes still hold, then write every line queued."""
        if self._pipes:
            await asyncio.wait(set(self._pipes.values()), timeout=CLOSE_SECONDS)
        for fd in list(self._pipes):  # held open by something that outlived its child
            self._end(fd)
        for writer in self._writers:
            writer.close(CLOSE_SECONDS)

    def _read(self, name: str, fd: int, stream: int) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        lines = Lines()
        self._pipes[fd] = loop.create_future()

        def readable() -> None:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            for line in lines.feed(data) if data else lines.end():
                self.line((name, stream, line))
            if not data:
                self._end(fd)

        loop.add_reader(fd, readable)

    def _end(self, fd: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self._pipes.pop(fd).set_result(None)

    def _dropped(self) -> Iterable[tuple[Hashable, float]]:
        return [(("log_lines_dropped", name, writer.to), count)
                for writer in self._writers for name, count in writer.dropped().items()]


class Lines:
    """Bytes read from a pipe, as whole lines (without their newlines)."""

    def __init__(self) -> None:
        self._kept = bytearray()  # the line so far, at most MAX_LINE bytes of it
        self._cut = 0  # bytes of it past MAX_LINE, dropped

    def feed(self, data: bytes) -> list[bytes]:
        """The lines `data` completes."""
        lines = []
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            self._keep(data[start:end])
            lines.append(self._take())
            start, end = end + 1, data.find(b"\n", end + 1)
        self._keep(data[start:])
        return lines

    def end(self) -> list[bytes]:
        """At the end of the pipe: the last line, if it had no newline."""
        return [self._take()] if self._kept else []

    def _keep(self, piece: bytes) -> None:
        room = MAX_LINE - len(self._kept)
        self._kept += piece[:room]
        self._cut += max(0, len(piece) - room)

    def _take(self) -> bytes:
        line = bytes(self._kept)
        if self._cut:
            line += b" [line cut: %d more bytes dropped]" % self._cut
        self._kept.clear()
        self._cut = 0
        return line


class _Writer(threading.Thread):
    """Writes lines in a thread of its own, from a queue of at most MAX_QUEUED bytes."""

    def __init__(self, to: str, write: Callable[[Line], None],
                 done: Callable[[], None] = lambda: None) -> None:
        super().__init__(name=f"output-{to}", daemon=True)
        self.to = to
        self._write = write
        self._done = done
        self._lines: deque[Line] = deque()
        self._queued = 0
        self._closing = False
        self._dropped: Counter[str] = Counter()
        self._changed = threading.Condition()

    def put(self, line: Line) -> None:
        """Queue `line`, or drop and count it if the queue is full. Never waits for a write."""
        with self._changed:
            if self._queued + _size(line) > MAX_QUEUED:
                self._dropped[line[0]] += 1
                return
            self._lines.append(line)
            self._queued += _size(line)
            self._changed.notify()

    def dropped(self) -> dict[str, int]:
        with self._changed:
            return dict(self._dropped)

    def close(self, timeout: float) -> None:
        """Write what is queued (for at most `timeout` s), then stop."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self.join(timeout)

    def run(self) -> None:
        while (line := self._next()) is not None:
            try:
                self._write(line)
            except OSError:
                with self._changed:
                    self._dropped[line[0]] += 1
        self._done()

    def _next(self) -> Line | None:
        with self._changed:
            while not self._lines and not self._closing:
                self._changed.wait()
            if not self._lines:
                return None
            line = self._lines.popleft()
            self._queued -= _size(line)
            return line


def _size(line: Line) -> int:
    return len(line[2]) + 1  # its newline: a flood of empty lines is bounded too
