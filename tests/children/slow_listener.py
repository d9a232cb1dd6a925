"""A child that listens on settings.port only after settings.delay seconds, and says "ready"
then (as a simulator does once it listens)."""

import asyncio
from dataclasses import dataclass

from tickmesh.runtime import process


@dataclass(frozen=True)
class Settings:
    port: int
    delay: float = 1.0


async def _listen(ctx: process.ProcessContext[Settings]) -> None:
    await asyncio.sleep(ctx.settings.delay)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", ctx.settings.port)
    ctx.ready()
    async with server:
        await server.serve_forever()


def main() -> None:
    process.run(_listen, Settings, announces_ready=True)


if __name__ == "__main__":
    main()
