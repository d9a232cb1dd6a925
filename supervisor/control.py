"""The control socket: the supervisor answers requests on a ZeroMQ REP socket, and
`tickmesh status` asks there. A request is one frame, a command name; the only command is
`status`. Every answer is a JSON object; a bad request gets {"error": ...}.
"""

from __future__ import annotations

import json
import socket
from typing import Any, Callable

import zmq
import zmq.asyncio

from bus.process import prepare_endpoint

STATUS = b"status"


class ControlError(Exception):
    """The control socket cannot be bound (the endpoint is taken, or invalid)."""


class NoSupervisor(Exception):
    """Nobody (or something that is not a supervisor) answered at the control endpoint."""


class ControlServer:
    """Binds at once, so that a taken endpoint is known before any child starts."""

    def __init__(self, endpoint: str, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status
        self._socket = zmq.asyncio.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            _refuse_if_listening(endpoint)
            prepare_endpoint(endpoint)
            self._socket.bind(endpoint)
        except (OSError, zmq.ZMQError) as exc:
            self._socket.close(linger=0)
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


def _refuse_if_listening(endpoint: str) -> None:
    """libzmq silently replaces an ipc socket file on bind: make sure nobody listens there."""
    if not endpoint.startswith("ipc://"):
        return  # a taken tcp port makes bind() fail by itself
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(endpoint[len("ipc://"):])
        except OSError:
            return  # no socket file, or a stale one
    raise OSError("someone listens there already (another supervisor with the same run_dir?)")


def request_status(endpoint: str, timeout: float) -> dict[str, Any]:
    """Ask the supervisor at `endpoint` for its status; NoSupervisor if no answer in time."""
    requester = zmq.Context.instance().socket(zmq.REQ)
    requester.setsockopt(zmq.LINGER, 0)
    try:
        requester.connect(endpoint)
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
