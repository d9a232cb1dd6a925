"""A raw TCP server on loopback for WebSocket clients under test: it runs a script per connection
(in a thread each), with the helpers to accept the opening handshake by hand and to write
frames byte by byte, for what no simulator does (and no well-behaved server would)."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading


class RawServer:
    """A TCP server on loopback that runs `script(conn)` for each connection, in a thread each;
    `accepted` counts the connections. Closed at the end of the test."""

    def __init__(self, script) -> None:
        self.script = script
        self.accepted = 0
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/v2/iex"
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "RawServer":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.sock.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.script(conn, self.stop)
        except OSError:
            pass


def upgrade(conn: socket.socket) -> None:
    """Read the client's handshake and accept it, as a WebSocket server would."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        if not chunk:
            raise OSError("closed during the handshake")
        head += chunk
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                              .digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def text_frame(payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def frame(first_byte: int, payload: bytes) -> bytes:
    """A server's (unmasked) frame: `first_byte` is FIN, RSV and the opcode (0x81: a whole text
    message, 0x01: its first fragment, 0x80: the last continuation, 0x89: a ping...)."""
    if len(payload) < 126:
        return bytes([first_byte, len(payload)]) + payload
    if len(payload) < 1 << 16:
        return bytes([first_byte, 126]) + struct.pack(">H", len(payload)) + payload
    return bytes([first_byte, 127]) + struct.pack(">Q", len(payload)) + payload


def read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """A client's (masked) frame: (its first byte, its unmasked payload)."""
    first, second = _read(conn, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", _read(conn, 2))[0]
    elif length == 127:
        length = struct.unpack(">Q", _read(conn, 8))[0]
    mask = _read(conn, 4)
    payload = _read(conn, length)
    return first, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data
