"""A child that writes a lot at once, each of these one every `interval` s: `lines` structured
log lines ("chatter", padded with up to `pad` bytes), as many through the standard library's
logging from another thread, and `out_lines` long lines on stdout from a third thread
(`stdout_line`: up to `out_bytes` bytes each), then, if `oversize`, one stdout line of that
many bytes; then it logs "chatter done" and exits 0."""

import asyncio
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass

from tickmesh.runtime.logs import log
from tickmesh.runtime.process import ProcessContext, run


@dataclass(frozen=True)
class Settings:
    lines: int = 100
    interval: float = 0.0
    pad: int = 3000
    out_lines: int = 0
    out_bytes: int = 30_000
    oversize: int = 0


def stdout_line(name: str, index: int, out_bytes: int) -> str:
    """The `index`th stdout line of the chatter `name` (sizes spread over 0..out_bytes)."""
    return json.dumps({"child": name, "i": index, "pad": "x" * (index * 7919 % out_bytes)})


def _print(name: str, settings: Settings) -> None:
    for index in range(settings.out_lines):
        sys.stdout.write(stdout_line(name, index, settings.out_bytes) + "\n")
        sys.stdout.flush()
        time.sleep(settings.interval)
    if settings.oversize:
        sys.stdout.write("o" * settings.oversize + "\n")
        sys.stdout.flush()


def _log_through_the_library(settings: Settings) -> None:
    library = logging.getLogger("chatter.library")
    for index in range(settings.lines):
        library.info("library line %d", index)
        time.sleep(settings.interval)


async def chatter(ctx: ProcessContext[Settings]) -> None:
    settings = ctx.settings
    threads = [threading.Thread(target=_print, args=(ctx.name, settings), daemon=True),
               threading.Thread(target=_log_through_the_library, args=(settings,), daemon=True)]
    for thread in threads:
        thread.start()
    for index in range(settings.lines):
        log().info("chatter", i=index, pad="y" * (index * 31 % settings.pad))
        await asyncio.sleep(settings.interval)
    for thread in threads:
        await asyncio.to_thread(thread.join)
    log().info("chatter done", lines=settings.lines)


def main() -> None:
    run(chatter, Settings)


if __name__ == "__main__":
    main()
