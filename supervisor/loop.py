"""The supervisor loop: start the forwarder (if this host runs one) and the children, restart
them as their state machines say, answer the control socket, heartbeat, and on SIGINT/SIGTERM
stop them in reverse order (SIGTERM, then SIGKILL after each one's shutdown_timeout).

Start order: every child waits for the forwarder, if this host runs one, to say "ready", and
for the children its `after` names (runtime.readiness), at most its `ready_timeout` seconds in
all; then it starts anyway, with a warning (a handler reconnects with backoff; nothing is
gained by never starting it). A restart does not wait. On a host without a forwarder
([bus] forwarder = "none") nothing waits for one: the children and the supervisor's own
heartbeat and watch connect to the bus's lines elsewhere, and catch up whenever a forwarder
comes (libzmq reconnects). `restart NAME` on the control socket kills a running
child (as at a stop: SIGTERM, then SIGKILL after its shutdown_timeout) and its exit restarts it
at once. `stop NAME` stops one child the same way and holds it stopped; `start NAME` starts
it again (supervisor.child). `stop` stops the whole system, as SIGTERM does. `reload` reads
the config file again, checks it as at start (in a thread: the loop keeps going), and applies
what changed among the children (supervisor.reload): the removed and changed ones are
stopped, then the changed and added ones started as at start (after what they come `after`),
the rest left running.

A "child ready" line tells each process ready, with its own pid (the one `status` shows); a
"system" line tells the system's shape (supervisor.summary) once every process is ready and
running (at the latest 10 s after the start), at 10 s, and every minute after.

Its `status` answer, and its Prometheus endpoint (`[supervisor] metrics`, listening before any
child starts), tell each process's health as the bus shows it, CPU and memory
(supervisor.observer); a child whose process exited is stopped there, final heartbeat or not
(one killed outright sends none). They also tell each bus line's reachability: the supervisor
heartbeats on every line (one publisher connected to each) and reads each line alone for its
own heartbeat coming back (supervisor.reach). It goes by its name, `[supervisor] name`: its
heartbeats, metrics and log.

Each child's stdout and stderr, and the supervisor's own log, are relayed line by line to the
console and to NAME.log in the log dir (supervisor.output).

The run dir gets `system.json` (the control and bus endpoints, the config, the pid, the log
dir) while the system runs, so that `tickmesh status`, `tickmesh tail` and `tickmesh logs`
find it from any directory.

Everything runs on one asyncio (uvloop) loop; signal handlers only record the stop request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from itertools import count
from pathlib import Path
from typing import Coroutine

import structlog

from tickmesh.bus import sockets
from tickmesh.bus.endpoints import SYSTEM_FILE
from tickmesh.bus.publisher import Publisher
from tickmesh.runtime.logs import configure_logging
from tickmesh.runtime.metrics import Metrics
from tickmesh.runtime.process import HEARTBEAT_SECONDS, publish_heartbeat
from tickmesh.runtime.secrets import secret_from_env
from tickmesh.runtime.spec import ChildSpec
from tickmesh.supervisor import launch
from tickmesh.supervisor import reload as reloading
from tickmesh.supervisor.child import STARTUP_SECONDS, Child, State
from tickmesh.supervisor.config import Config, ConfigError
from tickmesh.supervisor.control import (BAD_CONFIG, ESSENTIAL, NOT_RUNNING, NOT_STOPPED, OTHER_CONFIG,
                                RESTART_REQUIRED, STOPPING, UNKNOWN_CHILD, ControlServer, refusal)
from tickmesh.supervisor.observer import Observer
from tickmesh.supervisor.output import Output
from tickmesh.supervisor.summary import FLOWING_AFTER, SUMMARY_EVERY, summary


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
        self._stop_requested = asyncio.Event()  # by SIGINT, SIGTERM or the control's `stop`
        self._log = structlog.get_logger()
        self.metrics = Metrics()
        self.metrics.collect(self._child_metrics)
        self.output = Output(config, self.metrics)  # every process's output: console, log files
        # health, CPU, memory, the lines' reach, Prometheus
        self.observer = Observer(lambda: self.children, config.name, config.bus)
        self._epoch = time.time_ns()  # its heartbeat publisher's: its own heartbeats' mark
        _mask_secrets(self.variables)

    async def run(self) -> None:
        """Supervise until SIGINT or SIGTERM, then stop every child."""
        self.output.start()
        name = self.config.name
        configure_logging(name, sink=self.output.sink(name))  # its own log: the same way
        sockets.use(self.config.bus)  # its heartbeat and control sockets: the bus's security
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop_requested.set)
        await self.observer.export(self.config.metrics)  # listens before any child starts
        control = ControlServer(self.config.control, self)
        serving = asyncio.create_task(control.serve(), name="control")
        self._write_system_file()
        bus = self.config.bus
        self._log.info("supervisor starting", config=str(self.config.path), pid=os.getpid(),
                       control=self.config.control, forwarder=bus.forwarder,
                       lines={line.name: [line.publish, line.subscribe] for line in bus.lines})
        watching = asyncio.create_task(self._watch(), name="watch")  # before the children
        for child in self.children:
            if child.config is self.config.forwarder:
                self._start(child)
            else:
                self._spawn(self._start_when_ready(child))
        beating = asyncio.create_task(self._heartbeat(), name="heartbeat")
        summing = asyncio.create_task(self._summarize(), name="summary")
        await self._stop_requested.wait()
        self._log.info("supervisor stopping")
        beating.cancel()
        summing.cancel()
        watching.cancel()
        await self._stop_all()
        serving.cancel()
        control.close()
        await self.observer.close()
        self._system_file().unlink(missing_ok=True)
        self._log.info("supervisor stopped")
        await self.output.close()

    def status(self) -> dict:
        now = asyncio.get_running_loop().time()
        return {
            "pid": os.getpid(),
            "config": str(self.config.path),
            **self.observer.status({child.name: child.status(now) for child in self.children}),
        }

    def restart(self, name: str) -> dict:
        """Kill the child `name` so that it starts again (the control's `restart NAME`)."""
        child = self._child(name)
        if child is None:
            return self._unknown(name)
        pid = child.pid
        if self._stopping or not child.request_restart():
            doing = "already restarting" if child.restarting else str(child.state)
            return refusal(f"{name} is {doing}: nothing to restart", NOT_RUNNING)
        self._log.warning("restarting child on request", child=name, pid=pid)
        self._spawn(self._terminate(child))
        return {"ok": True, "child": name, "pid": pid}

    def start_child(self, name: str) -> dict:
        """Start the stopped, exited or failed child `name` now (the control's `start NAME`)."""
        child = self._child(name)
        if child is None:
            return self._unknown(name)
        if self._stopping:
            return refusal("the system is stopping", STOPPING)
        if not child.request_start():
            return refusal(f"{name} is {child.state}: already started", NOT_STOPPED)
        self._log.info("starting child on request", child=name)
        self._start(child)
        return {"ok": True, "child": name}

    def stop_child(self, name: str) -> dict:
        """Stop the child `name` and keep it stopped (the control's `stop NAME`)."""
        child = self._child(name)
        if child is None:
            return self._unknown(name)
        if self._stopping:
            return refusal("the system is stopping", STOPPING)
        if self.config.forwarder and name == self.config.forwarder.name:
            return refusal(f"{name} cannot be stopped alone: every process depends on it "
                           f"(`tickmesh stop` stops the whole system, `tickmesh restart {name}` "
                           "restarts it)", ESSENTIAL)
        if not child.stoppable:
            return refusal(f"{name} is {child.state}: nothing to stop", NOT_RUNNING)
        self._log.info("stopping child on request", child=name, pid=child.pid)
        self._spawn(self._hold(child))
        return {"ok": True, "child": name, "pid": child.pid}

    def stop_system(self) -> dict:
        """Stop every child and exit, as on SIGTERM (the control's `stop`)."""
        self._log.info("system stop requested")
        self._stop_requested.set()
        return {"ok": True, "pid": os.getpid()}

    async def reload(self, path: str | None = None) -> dict:
        """Read the config file again and apply what changed among the children (the
        control's `reload`). Refused, changing nothing, if `path` is given and is not the
        system's file (nor has its content), if the config has problems or if its [bus] or
        [supervisor] changed."""
        if self._stopping:
            return refusal("the system is stopping", STOPPING)
        loop = asyncio.get_running_loop()
        if path is not None:
            other = await loop.run_in_executor(None, reloading.other_file, self.config.path,
                                               Path(path))
            if other:
                self._log.warning("config not reloaded", problems=[other])
                return refusal(other, OTHER_CONFIG)
        self._log.info("reloading the config", config=str(self.config.path))
        try:
            new, checked = await loop.run_in_executor(None, reloading.read, self.config.path)
        except ConfigError as exc:
            self._log.warning("config not reloaded", problems=exc.problems)
            return refusal(str(exc), BAD_CONFIG, problems=exc.problems)
        if fixed := reloading.fixed_changes(self.config, new):
            return refusal(f"restart the system to apply: {', '.join(fixed)}", RESTART_REQUIRED)
        changes = reloading.diff(self.config.children, new.children)
        for child in reversed(self.children):
            if child.name in changes.removed or child.name in changes.changed:
                await self._hold(child)
        if self._stopping:
            return refusal("the system is stopping", STOPPING)
        self._adopt(new, checked.variables, changes)
        self._log.info("config reloaded", **changes.to_dict())
        return {"ok": True, "config": str(self.config.path), **changes.to_dict()}

    def _child(self, name: str) -> Child | None:
        return next((child for child in self.children if child.name == name), None)

    def _unknown(self, name: str) -> dict:
        known = ", ".join(child.name for child in self.children)
        return refusal(f"unknown child {name[:64]!r}; children: {known}", UNKNOWN_CHILD)

    # --- starting ---------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _start_when_ready(self, child: Child) -> None:
        forwarder = [self.config.forwarder.name] if self.config.forwarder else []
        waits_for = [*forwarder, *child.config.after]
        pending = [self._ready[name].wait() for name in waits_for]
        try:
            await asyncio.wait_for(asyncio.gather(*pending), child.config.ready_timeout)
        except TimeoutError:
            late = [name for name in waits_for if not self._ready[name].is_set()]
            self._log.warning("starting without waiting any longer", child=child.name,
                              not_ready=late, waited_s=child.config.ready_timeout)
        if not self._stopping and child.pending:  # not started, nor stopped, on request
            self._start(child)

    def _start(self, child: Child) -> None:
        loop = asyncio.get_running_loop()
        spec = ChildSpec(child.name, child.config.settings, self.config.bus)
        process, ready_pipe, pid_pipe, output = launch.start(child.config.run, spec,
                                                            self.variables.get(child.name, ()))
        self.output.attach(child.name, *output)
        exit_code = launch.watch_exit(process)
        self._processes[child.name] = (process, exit_code)
        child.started(process.pid, loop.time())  # the keeper's pid, until it reports the child's
        exit_code.add_done_callback(lambda done: self._exited(child, done.result()))
        pid, ready = launch.watch_pid(pid_pipe), launch.watch_ready(ready_pipe)
        pid.add_done_callback(lambda reported: self._reported(child, process, reported.result()))
        # "ready" once the child's own pid is known too: the ready line shows the pid status shows
        asyncio.gather(pid, ready).add_done_callback(
            lambda _: self._said_ready(child, process, ready.result()))

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
        self.observer.health.ended(child.name, time.time())  # even with no final heartbeat
        loop = asyncio.get_running_loop()
        delay = child.exited(code, loop.time())
        if delay is not None and not self._stopping:
            self._restarts[child.name] = loop.call_later(delay, self._restart, child)

    def _restart(self, child: Child) -> None:
        del self._restarts[child.name]
        self._start(child)

    # --- reloading --------------------------------------------------------------------------

    def _adopt(self, new: Config, variables: dict[str, list[str]],
               changes: reloading.Changes) -> None:
        """Take the reloaded config, once its removed and changed children are stopped: the
        children in its order (the unchanged ones as they are), the changed and added ones
        started as at start."""
        self.config, self.variables = new, variables
        _mask_secrets(variables)
        fresh = {child.name: Child(child) for child in new.children
                 if child.name not in changes.unchanged}
        kept = {child.name: child for child in self.children}
        forwarder = [kept[new.forwarder.name]] if new.forwarder else []  # it never changes
        self.children = [*forwarder,
                         *(fresh.get(child.name) or kept[child.name] for child in new.children)]
        for child in fresh.values():  # (readiness events are never dropped: a start under
            self._ready.setdefault(child.name, asyncio.Event())  # way may wait on any)
            self._spawn(self._start_when_ready(child))

    # --- heartbeat --------------------------------------------------------------------------

    async def _forwarder_ready(self) -> None:
        """Once this host's forwarder said "ready" (at once, if it runs none)."""
        if self.config.forwarder:
            await self._ready[self.config.forwarder.name].wait()

    async def _heartbeat(self) -> None:
        """A heartbeat every second on every line, all its life: it tells the other processes
        (and other hosts) it is there, and its coming back tells each line's reach."""
        await self._forwarder_ready()
        publisher = Publisher(self.config.bus.publish_endpoints, sndhwm=self.config.bus.hwm,
                              ready_timeout=0, epoch=self._epoch)
        try:
            while True:
                publish_heartbeat(publisher, self.config.name, self.metrics)
                publisher.drain_subscriptions()
                await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            publisher.close()

    async def _summarize(self) -> None:
        """The system's shape in one line: once every process is ready and running (at the
        latest FLOWING_AFTER seconds after the start), at FLOWING_AFTER, then now and then."""
        clock = asyncio.get_running_loop().time
        started = clock()
        try:
            await asyncio.wait_for(self._all_up(), FLOWING_AFTER)
        except TimeoutError:
            pass
        self._say_summary()
        for due in count(FLOWING_AFTER, SUMMARY_EVERY):
            if started + due > clock():
                await asyncio.sleep(started + due - clock())
                self._say_summary()

    async def _all_up(self) -> None:
        """Every child (as at the start) ready, and so running: a child says "ready" only once
        its pid is reported, and it is up STARTUP_SECONDS after that (supervisor.child)."""
        await asyncio.gather(*(self._ready[child.name].wait() for child in self.children))
        await asyncio.sleep(STARTUP_SECONDS)

    def _say_summary(self) -> None:
        not_started = [child.name for child in self.children if child.pending]
        self._log.info("system", **summary(self.status(), not_started))

    async def _watch(self) -> None:
        """Follow every process's heartbeats and status on the bus, and each line's reach, once
        this host's forwarder is there (if it runs one)."""
        await self._forwarder_ready()
        await asyncio.gather(self.observer.watch(), self.observer.watch_lines(self._epoch))

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
            "log_dir": str(self.config.log_dir) if self.config.log_dir else None,
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
        if child.stop() or child.alive:  # alive: already being stopped on request
            await self._terminate(child)

    async def _hold(self, child: Child) -> None:
        """Stop `child` on request and keep it stopped (`stop NAME`; a reload's removed and
        changed children); its process is gone on return."""
        timer = self._restarts.pop(child.name, None)
        if timer is not None:
            timer.cancel()
        if child.request_stop() or child.alive:  # alive: already being stopped
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


def _mask_secrets(variables: dict[str, list[str]]) -> None:
    """The children's secrets (the variables their settings name): masked in the
    supervisor's logs and answers."""
    for names in variables.values():
        for variable in names:
            secret_from_env(variable)
