"""The control socket: the supervisor answers requests on a ZeroMQ REP socket, and
`tickmesh status`, `start`, `stop`, `restart` and `reload` ask there. A request is one UTF-8
frame, a command:
    status          {"pid", "config", "supervisor": {"pid", "uptime", "cpu_percent", ...},
                    "children": {name: {"state", "pid", "restarts", ..., "health"}}}
                    (supervisor.observer; docs/operations.md describes every field)
    restart NAME    kill the child NAME (SIGTERM, then SIGKILL after its shutdown_timeout) and
                    start it again at once, counted as a restart, whatever its restart policy:
                    {"ok": true, "child": NAME, "pid": the pid being killed}; refused with
                    "not_running" for a child with no process to kill (or one already being
                    restarted)
    stop NAME       stop the child NAME as at a system stop, and keep it stopped whatever its
                    restart policy (until `start NAME`): {"ok": true, "child": NAME, "pid": the
                    pid being stopped, or null}; answered at once, the process goes on being
                    stopped. Refused with "not_running" for a child already stopped, exited or
                    failed, and with "essential" for the forwarder (everything depends on it)
    start NAME      start the child NAME, stopped, exited or failed, now (a failed one with a
                    fresh restart-intensity window): {"ok": true, "child": NAME}; refused with
                    "not_stopped" for a child that is starting, running or about to restart
    stop            stop the whole system, as on SIGTERM (every child in reverse order, then
                    the supervisor exits): {"ok": true, "pid": the supervisor's pid}, at once
    reload [PATH]   read the config file again and check all of it; then stop and drop the
                    children it no longer has, restart those whose entries changed, start the
                    new ones (after what they come `after`, as at start), and leave the others
                    be: {"ok": true, "config": the file, "added": [...], "removed": [...],
                    "changed": [...], "unchanged": [...]} (names), once the removed and changed
                    ones are stopped. Refused, changing nothing, with "bad_config" (and
                    "problems": [...]) for a config with problems, and "restart_required" if
                    [bus] or [supervisor] changed. With a PATH (absolute,
                    or relative to the supervisor's directory), only if it is the file the
                    system reads (the same once resolved, or the same content): refused with
                    "other_config" otherwise (the error names both and how to switch)
A request naming a child the supervisor does not have is refused with "unknown_child" (the
error lists its children); `start`, `stop NAME` and `reload`, while the system is stopping,
with "stopping".
Every answer is a JSON object, with every known secret masked (runtime.secrets); a bad or
refused request gets {"error": ..., "reason": ...}.

Only the local user may ask. An ipc:// control socket lives in a directory of mode 0700
(created so; an existing one that its group or others can enter is refused). A tcp:// one is
a CURVE server (supervisor.config requires [bus] curve for it) that admits only the bus's
authorized keys (bus.sockets.control_server); `request` is its CURVE client (bus.request).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Protocol

import zmq

from tickmesh.bus import sockets
from tickmesh.bus.request import NoAnswer, ask_json
from tickmesh.runtime.secrets import redact

STATUS = b"status"
CLOSE_LINGER_MS = 500
RESTART = "restart"
UNKNOWN_CHILD = "unknown_child"
NOT_RUNNING = "not_running"
NOT_STOPPED = "not_stopped"
ESSENTIAL = "essential"
STOPPING = "stopping"
BAD_CONFIG = "bad_config"
RESTART_REQUIRED = "restart_required"
OTHER_CONFIG = "other_config"
BAD_REQUEST = "bad_request"
KNOWN = "'status', 'restart NAME', 'start NAME', 'stop NAME', 'stop', 'reload [PATH]'"


class ControlError(Exception):
    """The control socket cannot be bound (the endpoint is taken, or invalid)."""


class NoSupervisor(NoAnswer):
    """Nobody (or something that is not a supervisor) answered at the control endpoint."""


class Refused(Exception):
    """The supervisor answered, refusing the request; `reason` says why (UNKNOWN_CHILD, ...)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def refusal(message: str, reason: str, **details: Any) -> dict[str, Any]:
    """The answer to a request that cannot be carried out."""
    return {"error": message, "reason": reason, **details}


class Commands(Protocol):
    """What the supervisor does for each request (supervisor.loop.Supervisor)."""

    def status(self) -> dict[str, Any]: ...

    def restart(self, name: str) -> dict[str, Any]: ...

    def start_child(self, name: str) -> dict[str, Any]: ...

    def stop_child(self, name: str) -> dict[str, Any]: ...

    def stop_system(self) -> dict[str, Any]: ...

    async def reload(self, path: str | None = None) -> dict[str, Any]: ...


class ControlServer:
    """Binds at once, so that a taken endpoint is known before any child starts."""

    def __init__(self, endpoint: str, commands: Commands) -> None:
        self._commands = commands
        problem = sockets.owner_problem(endpoint) or private_directory_problem(endpoint)
        if problem:
            raise ControlError(f"cannot bind the control socket {problem}")
        try:
            self._socket, self._authenticator = sockets.control_server(endpoint)
        except (OSError, zmq.ZMQError) as exc:
            raise ControlError(f"cannot bind the control socket {endpoint}: {exc}") from None

    async def serve(self) -> None:
        """Answer requests until cancelled."""
        while True:
            request = await self._socket.recv_multipart()
            answer = await self._answer(request)
            await self._socket.send(redact(json.dumps(answer)).encode())

    async def _answer(self, request: list[bytes]) -> dict[str, Any]:
        command, _, name = request[0].decode(errors="replace").partition(" ")
        match len(request), command, name:
            case 1, "status", "":
                return self._commands.status()
            case 1, "restart", str() if name:
                return self._commands.restart(name)
            case 1, "start", str() if name:
                return self._commands.start_child(name)
            case 1, "stop", str() if name:
                return self._commands.stop_child(name)
            case 1, "stop", "":
                return self._commands.stop_system()
            case 1, "reload", str():
                return await self._commands.reload(name or None)
        return refusal(f"unknown request {request[0][:40]!r}; known: {KNOWN}", BAD_REQUEST)

    def close(self) -> None:
        self._socket.close(linger=CLOSE_LINGER_MS)  # the answer to `stop` may still be leaving
        if self._authenticator is not None:
            self._authenticator.stop()


def private_directory_problem(endpoint: str) -> str:
    """For an ipc:// endpoint: make its directory, mode 0700, if there is none, and make ours
    0700 if it is open to others (an older tickmesh's run dir was 0755); why it cannot be used
    if it belongs to someone else ("" if it can)."""
    if not endpoint.startswith("ipc://"):
        return ""
    directory = Path(endpoint[len("ipc://"):]).parent
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = directory.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        directory.chmod(0o700)
        info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        return (f"{endpoint}: its directory {directory} is accessible to other users "
                f"(mode {mode:o}, owner uid {info.st_uid}); it must be yours, mode 700 "
                f"(chmod 700 {directory})")
    return ""


def request_status(endpoint: str, timeout: float) -> dict[str, Any]:
    """Ask the supervisor at `endpoint` for its status; NoSupervisor if no answer in time."""
    reply = request(endpoint, STATUS, timeout)
    if "error" in reply:
        raise NoSupervisor(f"unexpected answer from {endpoint}: {reply!r}")
    return reply


def request_restart(endpoint: str, name: str, timeout: float) -> dict[str, Any]:
    """Ask the supervisor at `endpoint` to restart the child `name`: its answer; NoSupervisor
    if none in time, Refused if it refuses."""
    reply = request(endpoint, f"{RESTART} {name}".encode(), timeout)
    if "error" in reply:
        raise Refused(str(reply["error"]), str(reply.get("reason", "")))
    return reply


def request(endpoint: str, command: bytes, timeout: float) -> dict[str, Any]:
    """One request's JSON object answer; NoSupervisor if there is none in time."""
    return ask_json(endpoint, command, timeout, "supervisor", NoSupervisor, secure=True)
