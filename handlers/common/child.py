"""A handler or simulator run as a supervised child, with its settings table read first.

    def main() -> None:
        child.run(_main, MySettings)    # async def _main(ctx, settings: MySettings)

The table from TICKMESH_CHILD is read into the dataclass (handlers.common.settings) before
anything starts: bad settings are one error log line naming the key, and exit code 2.
Then `bus.process.run` runs `_main` as the process's life.

`credential(variable)` reads an API key or secret from the environment variable a setting
names (never from the settings themselves).
"""

from __future__ import annotations

import sys
from typing import Awaitable, Callable, TypeVar

from bus import process
from handlers.common.settings import SettingsError, read

S = TypeVar("S")
EXIT_BAD_SETTINGS = 2
PLACEHOLDER_CREDENTIAL = "tickmesh-demo"
"""Sent when the variable is unset: the simulators accept any credentials by default."""


def run(main: Callable[[process.ProcessContext, S], Awaitable[None]], settings: type[S]) -> None:
    spec = process.child_spec()
    try:
        parsed = read(settings, spec.settings)
    except SettingsError as exc:
        process.configure_logging(spec.name)
        process.log().error("bad settings", error=str(exc))
        sys.exit(EXIT_BAD_SETTINGS)
    process.run(lambda ctx: main(ctx, parsed), spec)


def credential(variable: str) -> str:
    """The secret in `variable` (kept out of every log line), or the placeholder."""
    value = process.secret_from_env(variable)
    if not value:
        process.log().warning("credential not set: sending a placeholder, which only a "
                              "simulator accepts", variable=variable)
    return value or PLACEHOLDER_CREDENTIAL
