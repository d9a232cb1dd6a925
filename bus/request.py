"""Request and answer on a REQ socket: what every client of a tickmesh service shares (the
book builder's snapshot service, the supervisor's control socket, which `tickmesh` and the
heartbeat monitor ask, and the recorder's gap fill).

A REQ socket sends one request and must then receive its answer before it may send again, so
one whose answer did not come in time is of no more use: it is closed, and `Requester` makes a
new one for its next request. Sockets come from bus.sockets (`secure`: a CURVE client on
tcp://, as the control socket requires). A client raises its own subclass of `NoAnswer`, whose
message names the service: "no supervisor answered at ipc://.../control within 2 s".
"""

from __future__ import annotations

import json
from typing import Any

import zmq

from tickmesh.bus import sockets

UNEXPECTED_SHOWN = 200  # bytes of an unexpected answer shown in the error


class NoAnswer(Exception):
    """Nothing answered in time, the socket failed, or what answered does not speak the
    service's protocol."""


class Requester:
    """A client of the service at `endpoint`, which `service` names in its errors (instances
    of `error`). Its socket is made at the first request and kept while answers come. Not
    thread-safe: one caller at a time."""

    def __init__(self, endpoint: str, service: str, error: type[NoAnswer] = NoAnswer,
                 secure: bool = False) -> None:
        self.endpoint = endpoint
        self.service = service
        self.error = error
        self.secure = secure
        self._socket: zmq.Socket | None = None

    def ask(self, request: bytes, timeout: float) -> list[bytes]:
        """The frames that answer `request`; `error` if none came within `timeout` s."""
        try:
            if self._socket is None:
                self._socket = sockets.request_client(self.endpoint, secure=self.secure)
            self._socket.send(request)
            answer = self._socket.recv_multipart() if self._socket.poll(int(timeout * 1000)) \
                else None
        except zmq.ZMQError as exc:
            self.close()
            raise self.error(f"no {self.service} at {self.endpoint}: {exc}") from None
        if answer is None:
            self.close()  # it cannot ask again
            raise self.error(f"no {self.service} answered at {self.endpoint} within "
                             f"{timeout:g} s")
        return answer

    def ask_json(self, request: bytes, timeout: float) -> dict[str, Any]:
        """The JSON object that answers `request` in one frame; `error` for anything else."""
        frames = self.ask(request, timeout)
        try:
            answer = json.loads(frames[0]) if len(frames) == 1 else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self.error(f"unexpected answer from {self.endpoint}: "
                             f"{b''.join(frames)[:UNEXPECTED_SHOWN]!r}")
        return answer

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


def ask_json(endpoint: str, request: bytes, timeout: float, service: str,
             error: type[NoAnswer] = NoAnswer, secure: bool = False) -> dict[str, Any]:
    """One request, on a socket of its own: the JSON object that answers it (see
    Requester.ask_json)."""
    requester = Requester(endpoint, service, error, secure)
    try:
        return requester.ask_json(request, timeout)
    finally:
        requester.close()
