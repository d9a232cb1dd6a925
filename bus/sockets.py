"""Every ZeroMQ socket tickmesh opens is made here: the publisher's, the subscriber's, the
forwarder's two, and the request/reply pairs (the supervisor's control socket, the book
builder's snapshot service). Socket options, and transport security, are therefore set in
one place.

`BusConfig` is the `[bus]` table of a config, as every child receives it: the two endpoints
of line A (and of line B, if there is one: a second forwarder, on another host, that carries
every message too; `forwarder` says which line's forwarder this host runs, or "none"),
the high-water marks (messages queued before libzmq drops: `hwm` for each publisher's send
queue and the forwarder's intake from it, `subscriber_hwm` for the forwarder's send queue to
each subscriber, `receive_hwm` for each consumer's own receive queue unless it sets its own:
what a slow consumer can hold, in those two places, before it loses messages; the forwarder's
is the one that shields a consumer whose whole process waits for a core, the consumer's own
only adds to what a stalled one holds, ~400 bytes a queued message in each) and the largest
message the
forwarder accepts from a publisher (ZMQ_MAXMSGSIZE on its inbound side: a publisher that sends
more is disconnected, so the forwarder's memory is bounded in bytes, not only in messages), and
its transport security.

Security (ZeroMQ CURVE: encryption, and authentication by key pairs), for a bus across
machines. With `curve` on, the forwarder's two sides are CURVE servers with the key pair in
`server_key_file`, and an authenticator (zmq.auth, in the forwarder's process) admits only the
public keys found in the directory `authorized_keys`; every publisher and subscriber is a CURVE
client with its own key pair (`client_key_file`) and the forwarder's public key (read from
`server_key_file`, which on a machine without the forwarder is the public `.key` file only).
A peer without an authorized key completes no handshake: a subscriber receives nothing, a
publisher injects nothing. Keys are files made by `tickmesh keys` (zmq.auth's certificates),
never values in a config.

A process says once which bus it is on (`use(bus)`: runtime.process and the forwarder do, and
the command line for the running system's bus); from then on the factory secures every
publisher and subscriber socket to that bus's endpoints, and the supervisor's control socket
when it is on tcp:// (`control_server`, and `request_client(..., secure=True)`), with that
bus's keys. Other request/reply services (book snapshots, gap fills) stay as they are.

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
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

DEFAULT_HWM = 100_000
DEFAULT_SUBSCRIBER_HWM = 100_000
DEFAULT_RECEIVE_HWM = 10_000
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_LINGER_MS = 0
PEER_HEARTBEAT_MS = 1000  # a publisher or subscriber on tcp:// pings its forwarder this often ...
PEER_TIMEOUT_MS = 3000  # ... and drops the connection (then reconnects) after this silence
_PEER_WATCH = {"heartbeat_ivl": PEER_HEARTBEAT_MS, "heartbeat_timeout": PEER_TIMEOUT_MS}
"""On publishers' and subscribers' tcp:// connections to a forwarder: a forwarder host that
vanished (powered off, its link cut) closes no TCP connection; without pings its peers would
keep the dead connection for many minutes (TCP's retransmission timeout), and not reconnect
when it returns. With them, a dead forwarder is dropped in PEER_TIMEOUT_MS, and libzmq
reconnects as soon as it is back. The forwarder itself pings nobody and times nobody out (the
pings ask no timeout of it: ZMQ_HEARTBEAT_TTL stays 0): a consumer stopped for a while (SIGSTOP)
keeps its connection, and learns of what it lost by the sequence numbers when it resumes; a
peer that vanished costs the forwarder at most its bounded queue until TCP gives up on it. Over
ipc://, on one host, a process that dies closes its end: no pings."""


LINE_NAMES = ("A", "B")
NO_FORWARDER = "none"


@dataclass(frozen=True)
class Line:
    """One bus line: a forwarder's two endpoints."""

    name: str  # "A" or "B"
    publish: str
    subscribe: str


@dataclass(frozen=True)
class BusConfig:
    publish: str  # line A
    subscribe: str
    hwm: int = DEFAULT_HWM
    subscriber_hwm: int = DEFAULT_SUBSCRIBER_HWM
    receive_hwm: int = DEFAULT_RECEIVE_HWM
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    curve: bool = False
    server_key_file: str = ""  # the forwarder's key pair (its public key only, elsewhere)
    client_key_file: str = ""  # this process's key pair
    authorized_keys: str = ""  # a directory of the public keys the forwarder admits
    publish_b: str = ""  # line B, if there is one: a second forwarder carrying every message
    subscribe_b: str = ""
    forwarder: str = "A"  # the line whose forwarder this host's supervisor runs, or "none"

    @property
    def lines(self) -> tuple[Line, ...]:
        """Line A, and line B if there is one."""
        a = Line("A", self.publish, self.subscribe)
        return (a, Line("B", self.publish_b, self.subscribe_b)) if self.publish_b else (a,)

    @property
    def publish_endpoints(self) -> tuple[str, ...]:
        """Where a publisher sends every message: each line's publish endpoint."""
        return tuple(line.publish for line in self.lines)

    @property
    def subscribe_endpoints(self) -> tuple[str, ...]:
        """Where a subscriber reads: each line's subscribe endpoint."""
        return tuple(line.subscribe for line in self.lines)

    @property
    def served_line(self) -> Line | None:
        """The line whose forwarder runs here (None: no forwarder on this host)."""
        return next((line for line in self.lines if line.name == self.forwarder), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "BusConfig":
        return cls(**raw)


_bus: BusConfig | None = None  # the bus this process is on (use), for its security


def use(bus: BusConfig) -> None:
    """Say which bus this process is on: its sockets to it are secured as `bus` says."""
    global _bus
    _bus = bus


def _curve_for(endpoint: str) -> BusConfig | None:
    """This process's bus, if it has CURVE on and `endpoint` is one of its two endpoints."""
    if _bus is not None and _bus.curve and any(endpoint in (line.publish, line.subscribe)
                                               for line in _bus.lines):
        return _bus
    return None


def _control_curve(endpoint: str, secure: bool) -> BusConfig | None:
    """This process's bus, if it has CURVE on and `endpoint` is a tcp:// control socket."""
    if secure and _bus is not None and _bus.curve and endpoint.startswith("tcp://"):
        return _bus
    return None


def _curve_client(sock: zmq.Socket, bus: BusConfig) -> None:
    public, secret = zmq.auth.load_certificate(bus.client_key_file)
    server_public, _ = zmq.auth.load_certificate(bus.server_key_file)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, server_public


def _curve_server(sock: zmq.Socket, bus: BusConfig) -> None:
    public, secret = zmq.auth.load_certificate(bus.server_key_file)
    if secret is None:
        raise ValueError(f"{bus.server_key_file} holds no secret key: the forwarder and a tcp "
                         "control socket need the server's key pair (its .key_secret file)")
    sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.curve_server = True


def authenticator(bus: BusConfig, context: zmq.Context) -> ThreadAuthenticator | None:
    """For CURVE servers on `context`: admits only the public keys in bus.authorized_keys
    (read once, at start), in a thread of its own. None without CURVE. Stop it at the end."""
    if not bus.curve:
        return None
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=bus.authorized_keys)
    return auth


def create_keys(directory: str | Path, name: str) -> tuple[Path, Path]:
    """A new key pair `name` in `directory` (made 0700 if new): (public key file, secret key
    file), the latter readable by its owner only."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)


def key_file_problem(path: str, secret: bool = False) -> str:
    """Why `path` is not a usable key file ("" if it is): unreadable, no key in it, no secret
    key when `secret`, or a secret key that other users may read."""
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        return f"cannot read a key from {path} ({exc})"
    if secret and secret_key is None:
        return f"{path} holds no secret key (name the .key_secret file `tickmesh keys` made)"
    mode = Path(path).stat().st_mode & 0o777
    if secret_key is not None and mode & 0o077:
        return f"{path} holds a secret key and other users may read it (mode {mode:o}): chmod 600 it"
    return ""


def _socket(kind: int, *, context: zmq.Context | None = None, linger: int = DEFAULT_LINGER_MS,
            **options: int) -> zmq.Socket:
    socket_ = (context or zmq.Context.instance()).socket(kind)
    socket_.setsockopt(zmq.LINGER, linger)
    for name, value in options.items():
        socket_.setsockopt(getattr(zmq, name.upper()), value)
    return socket_


def _peer_watch(endpoints: tuple[str, ...]) -> dict[str, int]:
    """The ping options for a connection to these endpoints: on tcp:// only (_PEER_WATCH)."""
    return _PEER_WATCH if any(end.startswith("tcp://") for end in endpoints) else {}


def publisher(endpoints: tuple[str, ...], hwm: int, linger_ms: int,
              context: zmq.Context | None = None) -> zmq.Socket:
    """An XPUB connected to the publish side of each line's forwarder (XPUB: it sees each
    forwarder's subscription, which tells it a forwarder is there). One socket for both lines:
    libzmq sends every message to each forwarder subscribed, each through a queue of its own
    (`hwm` each), so a line that is down or slow loses its own copies and never blocks."""
    sock = _socket(zmq.XPUB, context=context, linger=linger_ms, sndhwm=hwm,
                   **_peer_watch(endpoints))
    if curve := _curve_for(endpoints[0]):
        _curve_client(sock, curve)
    for endpoint in endpoints:
        sock.connect(endpoint)
    return sock


def subscriber(endpoint: str, prefixes: list[bytes], hwm: int,
               context: zmq.Context | None = None) -> zmq.Socket:
    """A SUB connected to the forwarder's subscribe side, subscribed to `prefixes`."""
    sock = _socket(zmq.SUB, context=context, rcvhwm=hwm, **_peer_watch((endpoint,)))
    for prefix in prefixes:
        sock.setsockopt(zmq.SUBSCRIBE, prefix)
    if curve := _curve_for(endpoint):
        _curve_client(sock, curve)
    sock.connect(endpoint)
    return sock


def forwarder(config: BusConfig, line: Line,
              context: zmq.Context | None = None) -> tuple[zmq.Socket, zmq.Socket]:
    """(frontend XSUB bound at the line's publish endpoint, backend XPUB bound at its subscribe
    endpoint); both CURVE servers if config.curve (their context needs an `authenticator`)."""
    frontend = _socket(zmq.XSUB, context=context, rcvhwm=config.hwm,
                       maxmsgsize=config.max_message_bytes)
    backend = _socket(zmq.XPUB, context=context, sndhwm=config.subscriber_hwm)
    for sock, endpoint in ((frontend, line.publish), (backend, line.subscribe)):
        if config.curve:
            _curve_server(sock, config)
        prepare_endpoint(endpoint)
        sock.bind(endpoint)
    return frontend, backend


def reply_server(endpoint: str, blocking: bool = False) -> zmq.asyncio.Socket | zmq.Socket:
    """An asyncio REP socket (a plain one if `blocking`, for a service polled in a thread of
    its own), bound (raises zmq.ZMQError or OSError): a service's end."""
    context = zmq.Context.instance() if blocking else zmq.asyncio.Context.instance()
    return _bound_reply(_socket(zmq.REP, context=context), endpoint)


def control_server(endpoint: str) -> tuple[zmq.asyncio.Socket, ThreadAuthenticator | None]:
    """The supervisor's control socket: an asyncio REP socket, bound; on tcp:// with CURVE on
    this process's bus, a CURVE server admitting only the bus's authorized keys, with the
    authenticator that does it (stop it after closing the socket)."""
    context = zmq.asyncio.Context.instance()
    sock = _socket(zmq.REP, context=context)
    auth = None
    if curve := _control_curve(endpoint, True):
        auth = authenticator(curve, zmq.Context.shadow(context.underlying))
        _curve_server(sock, curve)
    try:
        return _bound_reply(sock, endpoint), auth
    except BaseException:
        if auth is not None:
            auth.stop()
        raise


def _bound_reply(sock: zmq.Socket, endpoint: str) -> zmq.Socket:
    try:
        prepare_endpoint(endpoint)
        sock.bind(endpoint)
    except (OSError, zmq.ZMQError):
        sock.close(linger=0)
        raise
    return sock


def request_client(endpoint: str, secure: bool = False) -> zmq.Socket:
    """A REQ socket connected to a service's endpoint (the supervisor's control, ...); with
    `secure` (the control socket), a CURVE client on tcp:// with this process's bus keys."""
    sock = _socket(zmq.REQ)
    if curve := _control_curve(endpoint, secure):
        _curve_client(sock, curve)
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
