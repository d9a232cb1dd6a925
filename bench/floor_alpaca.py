"""The floor of the Alpaca scenario: the least a Python handler can do per trade with the same
libraries as ours, by hand, in one function: a WebSocket client on uvloop reading the
simulator's msgpack frames, msgspec decode into a struct, normalize (topic, per-topic sequence,
ns timestamps) into the bus's wire map, encode into a reused buffer, two pyzmq sends to the
same forwarder. No settings, status, metrics, heartbeats, checks or error handling.

usage: python -m bench.floor_alpaca URL PUBLISH_ENDPOINT [--raw]
--raw: a plain socket and hand-parsed WebSocket frames instead of the websockets library (not
part of `make bench`: it shows what the WebSocket library costs).
Credentials come from APCA_API_KEY_ID / APCA_API_SECRET_KEY. Runs until killed.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import time
from urllib.parse import urlsplit

import msgspec
import uvloop
import zmq
from msgspec.msgpack import Ext

JOIN_S = 0.3  # for the forwarder's subscription to reach our PUB socket
_LOW34 = (1 << 34) - 1


class InTrade(msgspec.Struct, tag_field="T", tag="t", gc=False):
    S: str
    i: int
    x: str
    p: float
    s: float
    t: Ext
    c: list[str] = []
    z: str = ""


class OutTrade(msgspec.Struct, tag_field="k", tag="trade", gc=False):
    """The bus's Trade map (bus.events), keys as on the wire."""

    v: int
    p: str
    s: str
    ns: str
    te: int
    tr: int
    q: int
    e: int
    px: float
    sz: float
    id: str
    sd: str
    x: str
    c: list[str]


class Floor:
    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, 100_000)
        self.socket.connect(endpoint)
        time.sleep(JOIN_S)
        self.epoch = time.time_ns()
        self.streams: dict[str, list] = {}  # symbol -> [topic, last sequence]
        self.decode = msgspec.msgpack.Decoder(list[InTrade]).decode
        self.encode_into = msgspec.msgpack.Encoder().encode_into
        self.buffer = bytearray()

    def frame(self, data: bytes) -> None:
        """One frame of trades: decode, normalize, encode, send; the hot path."""
        now = time.time_ns()
        streams, buffer, send, encode_into = self.streams, self.buffer, self.socket.send, \
            self.encode_into
        for m in self.decode(data):
            stream = streams.get(m.S)
            if stream is None:
                stream = streams[m.S] = [f"trade.alpaca.{m.S}|".encode(), 0]
            stream[1] += 1
            packed = int.from_bytes(m.t.data)
            encode_into(OutTrade(2, "alpaca", m.S, "", (packed & _LOW34) * 1_000_000_000
                                 + (packed >> 34), now, stream[1], self.epoch, m.p, m.s,
                                 str(m.i), "", m.x, m.c), buffer)
            send(stream[0], zmq.SNDMORE)
            send(buffer)


def handshake_messages() -> list[bytes]:
    key, secret = os.environ["APCA_API_KEY_ID"], os.environ["APCA_API_SECRET_KEY"]
    encode = msgspec.msgpack.encode
    return [encode({"action": "auth", "key": key, "secret": secret}),
            encode({"action": "subscribe", "trades": ["*"]})]


async def run_websockets(url: str, floor: Floor) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers={"Content-Type": "application/msgpack"},
                       compression=None, ping_interval=None, max_size=2**24) as ws:
        auth, subscribe = handshake_messages()
        await ws.recv()  # connected
        await ws.send(auth)
        await ws.recv()  # authenticated
        await ws.send(subscribe)
        await ws.recv()  # the subscription
        recv, frame = ws.recv, floor.frame
        while True:
            frame(await recv(decode=False))


def run_raw(url: str, floor: Floor) -> None:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\nContent-Type: application/msgpack\r\n\r\n")
                 .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    buf, pos = bytearray(head.split(b"\r\n\r\n", 1)[1]), 0

    def frames():
        nonlocal buf, pos
        while True:
            have = len(buf) - pos
            if have >= 2:
                length, start = buf[pos + 1] & 0x7F, pos + 2
                if length == 126:
                    length, start = int.from_bytes(buf[pos + 2:pos + 4]), pos + 4
                elif length == 127:
                    length, start = int.from_bytes(buf[pos + 2:pos + 10]), pos + 10
                if start <= len(buf) and start + length <= len(buf):
                    pos = start + length
                    yield bytes(buf[start:pos])
                    continue
            del buf[:pos]
            pos = 0
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            buf += chunk

    def send(payload: bytes) -> None:  # a masked binary frame, with the all-zero mask
        sock.sendall(bytes([0x82, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
                     if len(payload) < 126 else
                     bytes([0x82, 0x80 | 126]) + len(payload).to_bytes(2) + b"\0\0\0\0" + payload)

    incoming = frames()
    auth, subscribe = handshake_messages()
    next(incoming)
    send(auth)
    next(incoming)
    send(subscribe)
    next(incoming)
    frame = floor.frame
    for data in incoming:
        frame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("endpoint")
    parser.add_argument("--raw", action="store_true")
    args = parser.parse_args()
    floor = Floor(args.endpoint)
    if args.raw:
        run_raw(args.url, floor)
    else:
        uvloop.run(run_websockets(args.url, floor))


if __name__ == "__main__":
    main()
