"""A child that makes the websockets library log: a server whose handler on /fail raises an
error quoting the secret in `secret_env` (websockets logs it, with its traceback), and an echo
on any other path, to which a client sends `messages` frames (websockets' DEBUG lines, were
they on). The lines come with provider "wsprov" bound; then it logs "wslib done" and exits 0."""

from dataclasses import dataclass

import structlog
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tickmesh.runtime.logs import log
from tickmesh.runtime.process import ProcessContext, run
from tickmesh.runtime.secrets import secret_from_env

PROVIDER = "wsprov"


@dataclass(frozen=True)
class Settings:
    secret_env: str = "WSLIB_SECRET"
    messages: int = 20


def _handler(secret: str):
    async def handle(ws: ServerConnection) -> None:
        if ws.request.path == "/fail":
            raise RuntimeError(f"refused the key {secret}")
        async for message in ws:
            await ws.send(message)

    return handle


async def _talk(port: int, messages: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/fail") as ws:
        try:
            await ws.recv()
        except ConnectionClosed:
            pass  # the handler failed: the server closed it
    async with connect(f"ws://127.0.0.1:{port}/echo") as ws:
        for index in range(messages):
            await ws.send(f"frame {index}")
            await ws.recv()


async def wslib(ctx: ProcessContext[Settings]) -> None:
    structlog.contextvars.bind_contextvars(provider=PROVIDER)
    secret = secret_from_env(ctx.settings.secret_env)
    async with serve(_handler(secret), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await _talk(port, ctx.settings.messages)
    log().info("wslib done")


def main() -> None:
    run(wslib, Settings)


if __name__ == "__main__":
    main()
