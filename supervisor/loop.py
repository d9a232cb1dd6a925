"""The supervisor loop: start the forwarder and the children in config order, restart them
as their state machines say, answer the control socket, and on SIGINT/SIGTERM stop them in
reverse order (SIGTERM, then SIGKILL after each one's shutdown_timeout).

Everything runs on one asyncio (uvloop) loop; signal handlers only record the stop request.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import structlog

from bus.process import ChildSpec
from supervisor import launch
from supervisor.child import STARTUP_SECONDS, Child
from supervisor.config import Config
from supervisor.control import ControlServer


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.children = [Child(child) for child in config.processes]
        self._processes: dict[str, tuple[subprocess.Popen, asyncio.Future[int]]] = {}
        self._restarts: dict[str, asyncio.TimerHandle] = {}
        self._stopping = False
        self._log = structlog.get_logger()

    async def run(self) -> None:
        """Supervise until SIGINT or SIGTERM, then stop every child."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_requested.set)
        control = ControlServer(self.config.control, self.status)
        serving = asyncio.create_task(control.serve(), name="control")
        self._log.info("supervisor starting", config=str(self.config.path), pid=os.getpid(),
                       control=self.config.control)
        for child in self.children:
            self._start(child)
        await stop_requested.wait()
        self._log.info("supervisor stopping")
        await self._stop_all()
        serving.cancel()
        control.close()
        self._log.info("supervisor stopped")

    def status(self) -> dict:
        now = asyncio.get_running_loop().time()
        return {
            "pid": os.getpid(),
            "config": str(self.config.path),
            "children": {child.name: child.status(now) for child in self.children},
        }

    def _start(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        spec = ChildSpec(child.name, child.config.settings, self.config.bus)
        process = launch.start(child.config.run, spec)
        exit_code = launch.watch_exit(process)
        self._processes[child.name] = (process, exit_code)
        child.started(process.pid, loop.time())
        exit_code.add_done_callback(lambda done: self._exited(child, done.result()))
        loop.call_later(STARTUP_SECONDS, child.up, process.pid)

    def _exited(self, child: Child, code: int) -> None:
        del self._processes[child.name]
        loop = asyncio.get_running_loop()
        delay = child.exited(code, loop.time())
        if delay is not None and not self._stopping:
            self._restarts[child.name] = loop.call_later(delay, self._restart, child)

    def _restart(self, child: Child) -> None:
        del self._restarts[child.name]
        self._start(child)

    async def _stop_all(self) -> None:
        self._stopping = True
        for timer in self._restarts.values():
            timer.cancel()
        for child in reversed(self.children):
            await self._stop(child)

    async def _stop(self, child: Child) -> None:
        if not child.stop():
            return
        process, exit_code = self._processes[child.name]
        process.send_signal(signal.SIGTERM)
        await asyncio.wait({exit_code}, timeout=child.config.shutdown_timeout)
        if not exit_code.done():
            self._log.warning("child ignored SIGTERM; killing it", child=child.name,
                              pid=process.pid)
            process.kill()
            await exit_code
