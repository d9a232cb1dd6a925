"""The supervisor loop: start the forwarder and the children, restart them as their state
machines say, answer the control socket, heartbeat, and on SIGINT/SIGTERM stop them in
reverse order (SIGTERM, then SIGKILL after each one's shutdown_timeout).

Start order: every child waits for the forwarder to say "ready", and for the children its
`after` names (runtime.readiness), at most its `ready_timeout` seconds in all; then it starts
anyway, with a warning (a handler reconnects with backoff; nothing is gained by never
starting it). A restart does not wait. `restart NAME` on the control socket kills a running
child (as at a stop: SIGTERM, then SIGKILL after its shutdown_timeout) and its exit restarts it
at once.

The run dir gets `system.json` (the control and bus endpoints, the config, the pid) while the
system runs, so that `tickmesh status` and `tickmesh tail` find it from any directory.

Everything runs on one asyncio (uvloop) loop; signal handlers only record the stop request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Coroutine

import structlog

from bus import sockets
from bus.publisher import Publisher
from runtime.metrics import Metrics
from runtime.process import HEARTBEAT_SECONDS, publish_heartbeat
from runtime.secrets import secret_from_env
from runtime.spec import ChildSpec
from supervisor import launch
from supervisor.child import STARTUP_SECONDS, Child, State
from supervisor.config import Config
from supervisor.control import NOT_RUNNING, UNKNOWN_CHILD, ControlServer, refusal

SYSTEM_FILE = "system.json"
NAME = "supervisor"


class Supervisor:
    def __init__(self, config: Config, variables: dict[str, list[str]] | None = None) -> None:
        """`variables`: per child, the environment variables its settings name (defaults
        included, as supervisor.preflight found them): the only ones passed on to it."""
        self.config = config
        self.variables = variables or {}
        self.children = [Child(child) for child in config.processes]
        self._ready = {child.name: asyncio.Event() for child in self.children}
        self._processes: dict[str, tuple[subprocess.Popen, asyncio.Future[int]]] = {}
        self._restarts: dict[str, asyncio.TimerHandle] = {}
        self._waiting: set[asyncio.Task] = set()
        self._stopping = False
        self._log = structlog.get_logger()
        self.metrics = Metrics()
        self.metrics.collect(self._child_metrics)
        for names in self.variables.values():  # the children's secrets: masked in its logs
            for variable in names:                # and answers too
                secret_from_env(variable)

    async def run(self) -> None:
        """Supervise until SIGINT or SIGTERM, then stop every child."""
        sockets.use(self.config.bus)  # its heartbeat and control sockets: the bus's security
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop_requested.set)
        control = ControlServer(self.config.control, self.status, self.restart)
        serving = asyncio.create_task(control.serve(), name="control")
        self._write_system_file()
        self._log.info("supervisor starting", config=str(self.config.path), pid=os.getpid(),
                       control=self.config.control)
        forwarder, *children = self.children
        self._start(forwarder)
        for child in children:
            self._spawn(self._start_when_ready(child))
        beating = asyncio.create_task(self._heartbeat(), name="heartbeat")
        await stop_requested.wait()
        self._log.info("supervisor stopping")
        beating.cancel()
        await self._stop_all()
        serving.cancel()
        control.close()
        self._system_file().unlink(missing_ok=True)
        self._log.info("supervisor stopped")

    def status(self) -> dict:
        now = asyncio.get_running_loop().time()
        return {
            "pid": os.getpid(),
            "config": str(self.config.path),
            "children": {child.name: child.status(now) for child in self.children},
        }

    def restart(self, name: str) -> dict:
        """Kill the child `name` so that it starts again (the control's `restart NAME`)."""
        child = next((child for child in self.children if child.name == name), None)
        if child is None:
            known = ", ".join(child.name for child in self.children)
            return refusal(f"unknown child {name[:64]!r}; children: {known}", UNKNOWN_CHILD)
        pid = child.pid
        if self._stopping or not child.request_restart():
            doing = "already restarting" if child.restarting else str(child.state)
            return refusal(f"{name} is {doing}: nothing to restart", NOT_RUNNING)
        self._log.warning("restarting child on request", child=name, pid=pid)
        self._spawn(self._terminate(child))
        return {"ok": True, "child": name, "pid": pid}

    # --- starting ---------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _start_when_ready(self, child: Child) -> None:
        waits_for = [self.config.forwarder.name, *child.config.after]
        pending = [self._ready[name].wait() for name in waits_for]
        try:
            await asyncio.wait_for(asyncio.gather(*pending), child.config.ready_timeout)
        except TimeoutError:
            late = [name for name in waits_for if not self._ready[name].is_set()]
            self._log.warning("starting without waiting any longer", child=child.name,
                              not_ready=late, waited_s=child.config.ready_timeout)
        if not self._stopping:
            self._start(child)

    def _start(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        spec = ChildSpec(child.name, child.config.settings, self.config.bus)
        process, ready_pipe, pid_pipe = launch.start(child.config.run, spec,
                                                    self.variables.get(child.name, ()))
        exit_code = launch.watch_exit(process)
        self._processes[child.name] = (process, exit_code)
        child.started(process.pid, loop.time())  # the keeper's pid, until it reports the child's
        exit_code.add_done_callback(lambda done: self._exited(child, done.result()))
        launch.watch_pid(pid_pipe).add_done_callback(
            lambda pid: self._reported(child, process, pid.result()))
        launch.watch_ready(ready_pipe).add_done_callback(
            lambda said: self._said_ready(child, process, said.result()))

    def _current(self, child: Child, process: subprocess.Popen) -> bool:
        """Is `process` the child's running keeper (not one that has exited since)?"""
        return child.name in self._processes and self._processes[child.name][0] is process

    def _reported(self, child: Child, process: subprocess.Popen, pid: int | None) -> None:
        if pid is not None and self._current(child, process):
            child.running_as(pid)
            asyncio.get_running_loop().call_later(STARTUP_SECONDS, child.up, pid)

    def _said_ready(self, child: Child, process: subprocess.Popen, said: bool) -> None:
        if said and self._current(child, process):
            child.ready = True
            self._ready[child.name].set()
            self._log.info("child ready", child=child.name, pid=child.pid)

    def _exited(self, child: Child, code: int) -> None:
        del self._processes[child.name]
        self._ready[child.name].clear()
        loop = asyncio.get_running_loop()
        delay = child.exited(code, loop.time())
        if delay is not None and not self._stopping:
            self._restarts[child.name] = loop.call_later(delay, self._restart, child)

    def _restart(self, child: Child) -> None:
        del self._restarts[child.name]
        self._start(child)

    # --- heartbeat --------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        await self._ready[self.config.forwarder.name].wait()
        publisher = Publisher(self.config.bus.publish, sndhwm=self.config.bus.hwm,
                              ready_timeout=0)
        try:
            while True:
                publish_heartbeat(publisher, NAME, self.metrics)
                publisher.drain_subscriptions()
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            publisher.close()

    def _child_metrics(self) -> list[tuple[tuple[str, str], float]]:
        pairs: list[tuple[tuple[str, str], float]] = []
        for child in self.children:
            pairs.append((("child_restarts", child.name), child.restarts))
            pairs.append((("child_running", child.name), float(child.state is State.RUNNING)))
        return pairs

    # --- the run dir's system file ----------------------------------------------------------

    def _system_file(self) -> Path:
        return self.config.run_dir / SYSTEM_FILE

    def _write_system_file(self) -> None:
        self.config.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._system_file().write_text(json.dumps({
            "pid": os.getpid(), "config": str(self.config.path.resolve()),
            "control": self.config.control, "bus": self.config.bus.to_dict(),
        }))

    # --- stopping ---------------------------------------------------------------------------

    async def _stop_all(self) -> None:
        self._stopping = True
        for task in self._waiting:
            task.cancel()
        for timer in self._restarts.values():
            timer.cancel()
        for child in reversed(self.children):
            await self._stop(child)

    async def _stop(self, child: Child) -> None:
        if child.stop():
            await self._terminate(child)

    async def _terminate(self, child: Child) -> None:
        """SIGTERM the child's process, then SIGKILL it after its shutdown_timeout (both
        through its keeper)."""
        process, exit_code = self._processes[child.name]
        process.send_signal(signal.SIGTERM)
        await asyncio.wait({exit_code}, timeout=child.config.shutdown_timeout)
        if not exit_code.done():
            self._log.warning("child ignored SIGTERM; killing it", child=child.name,
                              pid=child.pid)
            launch.kill(process)
            await exit_code
