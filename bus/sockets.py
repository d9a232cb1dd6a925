"""Every ZeroMQ socket tickmesh opens is made here: the publisher's, the subscriber's, the
forwarder's two, and the request/reply pairs (the supervisor's control socket, the book
builder's snapshot service). Socket options, and later transport security, are therefore set
in one place.

`BusConfig` is the `[bus]` table of a config, as every child receives it: the two endpoints,
the high-water mark (messages queued per peer before libzmq drops) and the largest message the
forwarder accepts from a publisher (ZMQ_MAXMSGSIZE on its inbound side: a publisher that sends
more is disconnected, so the forwarder's memory is bounded in bytes, not only in messages).

`prepare_endpoint` makes an ipc:// endpoint's directory; `owner_problem` tells whether someone
already listens at an endpoint (libzmq silently takes over an ipc socket file on bind, so a
second system would steal the first one's bus without this check).
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

DEFAULT_HWM = 100_000
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_LINGER_MS = 0


@dataclass(frozen=True)
class BusConfig:
    publish: str
    subscribe: str
    hwm: int = DEFAULT_HWM
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "BusConfig":
        return cls(**raw)


def _socket(kind: int, *, context: zmq.Context | None = None, linger: int = DEFAULT_LINGER_MS,
            **options: int) -> zmq.Socket:
    socket_ = (context or zmq.Context.instance()).socket(kind)
    socket_.setsockopt(zmq.LINGER, linger)
    for name, value in options.items():
        socket_.setsockopt(getattr(zmq, name.upper()), value)
    return socket_


def publisher(endpoint: str, hwm: int, linger_ms: int,
              context: zmq.Context | None = None) -> zmq.Socket:
    """An XPUB connected to the forwarder's publish side (XPUB: it sees the forwarder's
    subscription, which tells it the forwarder is there)."""
    sock = _socket(zmq.XPUB, context=context, linger=linger_ms, sndhwm=hwm)
    sock.connect(endpoint)
    return sock


def subscriber(endpoint: str, prefixes: list[bytes], hwm: int,
               context: zmq.Context | None = None) -> zmq.Socket:
    """A SUB connected to the forwarder's subscribe side, subscribed to `prefixes`."""
    sock = _socket(zmq.SUB, context=context, rcvhwm=hwm)
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def forwarder(config: BusConfig, context: zmq.Context | None = None) -> tuple[zmq.Socket, zmq.Socket]:
    """(frontend XSUB bound at publish, backend XPUB bound at subscribe)."""
    frontend = _socket(zmq.XSUB, context=context, rcvhwm=config.hwm,
                       maxmsgsize=config.max_message_bytes)
    backend = _socket(zmq.XPUB, context=context, sndhwm=config.hwm)
    for sock, endpoint in ((frontend, config.publish), (backend, config.subscribe)):
        prepare_endpoint(endpoint)
        sock.bind(endpoint)
    return frontend, backend


def reply_server(endpoint: str, blocking: bool = False) -> zmq.asyncio.Socket | zmq.Socket:
    """An asyncio REP socket (a plain one if `blocking`, for a service polled in a thread of
    its own), bound (raises zmq.ZMQError or OSError): a service's end."""
    context = zmq.Context.instance() if blocking else zmq.asyncio.Context.instance()
    sock = _socket(zmq.REP, context=context)
    try:
        prepare_endpoint(endpoint)
        sock.bind(endpoint)
    except (OSError, zmq.ZMQError):
        sock.close(linger=0)
        raise
    return sock


def request_client(endpoint: str) -> zmq.Socket:
    """A REQ socket connected to a service's endpoint (the supervisor's control, ...)."""
    sock = _socket(zmq.REQ)
    sock.connect(endpoint)
    return sock


def prepare_endpoint(endpoint: str) -> None:
    """Create the directory of an ipc:// endpoint so that bind() can succeed."""
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True)


def owner_problem(endpoint: str) -> str:
    """Why `endpoint` cannot be bound because someone holds it ("" if nobody does): a live
    process listening on the ipc socket file, or a tcp port already bound."""
    scheme, _, address = endpoint.partition("://")
    if scheme == "ipc":
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(address)
            except OSError:
                return ""  # no socket file, or a stale one
        return f"{endpoint}: another process listens there (another system with the same run dir?)"
    if scheme == "tcp":
        host, _, port = address.rpartition(":")
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as libzmq does
            try:
                probe.bind((host if host != "*" else "", int(port)))
            except OSError as exc:
                return f"{endpoint}: cannot be bound ({exc.strerror}; another system?)"
    return ""
