"""A scripted WebSocket server in the test's own process, on a real loopback socket: for a
provider that misbehaves in ways no simulator offers (a hostile peer), and for HTTP answers.

    with ScriptedServer(on_message) as server:      # server.url, server.port
        ...

`on_message(text) -> list[str]` gives the frames to send for each client message (and
`greeting` the frames sent on connect; a frame that is `CLOSE` closes the connection there); `http` maps a path to the (text) body an HTTP GET of it gets.
Each connection is served in its own thread, until the test ends.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from typing import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Request, Response, ServerConnection, serve


CLOSE = object()
"""Sent as a frame: the server closes the connection instead."""


class ScriptedServer:
    def __init__(self, on_message: Callable[[str], list[str]], greeting: list[str] = (),
                 http: dict[str, bytes] | None = None, raw: bool = False) -> None:
        self.on_message = on_message
        self.raw = raw
        self.greeting = list(greeting)
        self.http = http or {}
        self.http_requests: list[str] = []
        self.received: list[str] = []
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._request)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    def _request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.http_requests.append(request.path)
        body = self.http.get(request.path.split("?", 1)[0])
        if body is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such path\n")
        return connection.respond(HTTPStatus.OK, body.decode())

    def _handle(self, ws: ServerConnection) -> None:
        try:
            for frame in self.greeting:
                ws.send(frame)
            for message in ws:
                text = message if isinstance(message, str) or self.raw else message.decode()
                self.received.append(text)
                for frame in self.on_message(text):
                    if frame is CLOSE:
                        ws.close()
                        return
                    ws.send(frame)
        except ConnectionClosed:
            pass
