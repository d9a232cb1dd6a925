"""The handlers' WebSocket connection (handlers.common.websocket) against real servers on
loopback: a websockets server for the ordinary case, and a raw socket (tests.rawserver) for
what only a hostile or broken server does. The shortcut (whole-message frames split by us) must
give exactly what websockets would: every message, whole and in order, however the bytes are
cut; everything else must reach websockets and be handled as it handles it."""

from __future__ import annotations

import asyncio
import time

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from tickmesh.handlers.common.websocket import MAX_QUEUE, Timeouts, connect
from tests.rawserver import RawServer, frame, read_frame, upgrade

pytestmark = pytest.mark.timeout(30)
NO_PINGS = Timeouts(open=5, ping_interval=None, ping_timeout=None, close=0.5)
MAX_SIZE = 1 << 20


async def read(ws, count: int) -> list[bytes]:
    """The next `count` messages (they may come over several recv calls)."""
    messages: list[bytes] = []
    while len(messages) < count:
        messages += await asyncio.wait_for(ws.recv(), 10)
    return messages


def run(coroutine):
    return asyncio.run(coroutine)


def test_messages_come_whole_and_in_order_however_the_bytes_are_cut():
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 200_000]
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    stream = b"".join(frame(0x82 if i % 2 else 0x81, p) for i, p in enumerate(payloads))

    def drip(conn, stop):
        upgrade(conn)
        conn.sendall(stream)  # all at once, then cut at every byte of the small ones
        small = b"".join(frame(0x82, p) for p in payloads[:5])
        for i in range(len(small)):
            conn.sendall(small[i:i + 1])
            time.sleep(0.0005)  # pacing the drip, not synchronization: each byte its own read
        stop.wait(10)

    async def client(url):
        async with connect(url, {}, NO_PINGS, MAX_SIZE) as ws:
            return await read(ws, len(payloads) + 5)

    with RawServer(drip) as server:
        assert run(client(server.url)) == payloads + payloads[:5]


def test_a_fragmented_message_is_joined_and_a_ping_inside_it_is_answered():
    answered = []

    def fragments(conn, stop):
        upgrade(conn)
        conn.sendall(frame(0x01, b"frag") + frame(0x89, b"ping-data") + frame(0x00, b"men")
                     + frame(0x80, b"ted") + frame(0x81, b"after"))
        answered.append(read_frame(conn))
        stop.wait(10)

    async def client(url):
        async with connect(url, {}, NO_PINGS, MAX_SIZE) as ws:
            return await read(ws, 2)

    with RawServer(fragments) as server:
        assert run(client(server.url)) == [b"fragmented", b"after"]
    assert answered == [(0x8A, b"ping-data")]  # a pong with the ping's data


@pytest.mark.parametrize("bad, code", [
    (bytes([0x81, 127]) + (32 << 20).to_bytes(8, "big"), 1009),  # over max_size
    (bytes([0x81, 0x85]) + b"mask" + b"hello", 1002),  # masked: a server must not
    (frame(0xC1, b"rsv1"), 1002),  # an RSV bit, no extension agreed
])
def test_a_bad_frame_fails_the_connection_at_once_even_if_the_server_never_closes(bad, code):
    got = []

    def hostile(conn, stop):
        upgrade(conn)
        conn.sendall(frame(0x81, b"good") + bad)
        got.append(read_frame(conn))  # the client's close frame
        stop.wait(10)  # and never close

    async def client(url):
        async with connect(url, {}, NO_PINGS, MAX_SIZE) as ws:
            messages = await read(ws, 1)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await read(ws, 1)
            return messages, closed.value, time.monotonic() - started

    with RawServer(hostile) as server:
        messages, closed, seconds = run(client(server.url))
    assert messages == [b"good"]
    assert closed.sent.code == code and seconds < NO_PINGS.close + 2
    assert got and got[0][0] == 0x88 and int.from_bytes(got[0][1][:2], "big") == code


def test_a_refused_handshake_raises_the_status():
    def refuse(conn, stop):
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n\r\n")
        conn.sendall(b"forbidden")
        stop.wait(10)

    async def client(url):
        async with connect(url, {}, NO_PINGS, MAX_SIZE):
            pass

    with RawServer(refuse) as server, pytest.raises(InvalidStatus) as refused:
        run(client(server.url))
    assert refused.value.response.status_code == 401


def test_a_server_that_answers_no_ping_is_dropped_after_the_ping_timeout():
    def deaf(conn, stop):
        upgrade(conn)
        stop.wait(10)  # reads nothing, answers nothing

    async def client(url):
        timeouts = Timeouts(open=5, ping_interval=0.2, ping_timeout=0.3, close=0.3)
        async with connect(url, {}, timeouts, MAX_SIZE) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await read(ws, 1)
            return closed.value

    with RawServer(deaf) as server:
        closed = run(client(server.url))
    assert closed.sent.code == 1011 and "keepalive ping timeout" in closed.sent.reason


def test_a_websockets_server_gets_our_headers_and_replies_answers_our_pings_and_closes_cleanly():
    seen = {}

    async def echo(ws):
        seen["key"] = ws.request.headers.get("X-Api-Key")
        async for message in ws:
            await ws.send(message)

    async def client():
        async with serve(echo, "127.0.0.1", 0, ping_interval=0.05) as server:
            port = server.sockets[0].getsockname()[1]
            timeouts = Timeouts(open=5, ping_interval=0.05, ping_timeout=0.2)
            async with connect(f"ws://127.0.0.1:{port}/", {"X-Api-Key": "k"}, timeouts,
                               MAX_SIZE) as ws:
                await ws.send("text")
                await ws.send(b"\x00binary")
                received = await read(ws, 2)
                # round trips for 0.6 s: pings both ways (each side's pongs must be recognized,
                # or its ping timeout ends the connection within 0.25 s)
                until = time.monotonic() + 0.6
                while time.monotonic() < until:
                    await ws.send("x")
                    assert await read(ws, 1) == [b"x"]
                await ws.close()
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
            return received

    assert run(client()) == [b"text", b"\x00binary"]
    assert seen["key"] == "k"


# --- closing a connection whose reading is paused ---------------------------------------------

CLOSING = Timeouts(open=5, ping_interval=None, ping_timeout=None, close=5)
FLOOD = frame(0x81, b"x") * (MAX_QUEUE + 100)  # more than the reader may leave unread


async def eventually(condition, timeout: float = 10) -> None:
    """Poll `condition` on the event loop until it holds; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def answer_the_close(conn) -> None:
    """Read up to the client's close frame, send the server's, and end TCP (RFC 6455 5.5.1)."""
    first, payload = read_frame(conn)
    while first != 0x88:
        first, payload = read_frame(conn)
    conn.sendall(frame(0x88, payload[:2]))
    conn.close()


async def close_and_time(url: str, paused_first: bool):
    """Close the connection (once its reading paused, if `paused_first`): the close frame the
    server sent, as the client saw it (None: never read), and how long close() took."""
    async with connect(url, {}, CLOSING, MAX_SIZE) as ws:
        if paused_first:
            await eventually(lambda: not ws.transport.is_reading())
        started = time.monotonic()
        await ws.close()
        return ws.protocol.close_rcvd, time.monotonic() - started


def test_close_reads_the_servers_close_frame_when_reading_was_paused():
    def flood_then_answer(conn, stop):
        upgrade(conn)
        conn.sendall(FLOOD)  # never read by the client: its reading pauses
        answer_the_close(conn)

    with RawServer(flood_then_answer) as server:
        received, seconds = run(close_and_time(server.url, paused_first=True))
    assert received is not None and received.code == 1000
    assert seconds < CLOSING.close  # not aborted at the close timeout


def test_close_reads_the_servers_close_frame_behind_a_flood_of_messages():
    def answer_after_a_flood(conn, stop):
        upgrade(conn)
        read_frame(conn)  # the client's close frame, which the server acts on late
        conn.sendall(FLOOD + frame(0x88, (1000).to_bytes(2, "big")))
        conn.close()

    with RawServer(answer_after_a_flood) as server:
        received, seconds = run(close_and_time(server.url, paused_first=False))
    assert received is not None and received.code == 1000
    assert seconds < CLOSING.close
