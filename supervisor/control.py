"""The control socket: the supervisor answers requests on a ZeroMQ REP socket, and
`tickmesh status` asks there. A request is one frame, a command name; the only command is
`status`. Every answer is a JSON object; a bad request gets {"error": ...}.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import zmq

from bus import sockets

STATUS = b"status"


class ControlError(Exception):
    """The control socket cannot be bound (the endpoint is taken, or invalid)."""


class NoSupervisor(Exception):
    """Nobody (or something that is not a supervisor) answered at the control endpoint."""


class ControlServer:
    """Binds at once, so that a taken endpoint is known before any child starts."""

    def __init__(self, endpoint: str, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status
        problem = sockets.owner_problem(endpoint)
        if problem:
            raise ControlError(f"cannot bind the control socket {problem}")
        try:
            self._socket = sockets.reply_server(endpoint)
        except (OSError, zmq.ZMQError) as exc:
            raise ControlError(f"cannot bind the control socket {endpoint}: {exc}") from None

    async def serve(self) -> None:
        """Answer requests until cancelled."""
        while True:
            request = await self._socket.recv_multipart()
            await self._socket.send(json.dumps(self._answer(request)).encode())

    def _answer(self, request: list[bytes]) -> dict[str, Any]:
        if request == [STATUS]:
            return self._status()
        return {"error": f"unknown request {request[0][:40]!r}; the only one is 'status'"}

    def close(self) -> None:
        self._socket.close(linger=0)


def request_status(endpoint: str, timeout: float) -> dict[str, Any]:
    """Ask the supervisor at `endpoint` for its status; NoSupervisor if no answer in time."""
    requester = sockets.request_client(endpoint)
    try:
        requester.send(STATUS)
        if not requester.poll(int(timeout * 1000)):
            raise NoSupervisor(f"no supervisor answered at {endpoint} within {timeout:g} s")
        reply = json.loads(requester.recv())
    except (zmq.ZMQError, ValueError) as exc:
        raise NoSupervisor(f"no supervisor at {endpoint}: {exc}") from None
    finally:
        requester.close(linger=0)
    if not isinstance(reply, dict) or "error" in reply:
        raise NoSupervisor(f"unexpected answer from {endpoint}: {reply!r}")
    return reply
