"""What every provider's simulator shares: the common keys of its settings, its command line,
and its two ways to run.

A simulator module defines `SimSettings` (a `SimulatorSettings` with its own defaults and
keys), `async def run_server(settings, counts, ready)` (serve until cancelled, calling
`ready()` once it listens: the supervisor starts the handlers that wait for it then), and:

    def main() -> None:                   # supervised: settings from TICKMESH_CHILD
        simulator.run_child(run_server, SimSettings)

    def cli(argv: list[str]) -> None:     # `tickmesh sim PROVIDER ...`: by hand, no bus
        parser = simulator.parser("alpaca", "A local ...", rate="...", replay="...")
        parser.add_argument("--blast", type=int)        # the provider's own flags
        simulator.run_cli(parser, argv, SimSettings, run_server)

The shared flags: --host, --port, --rate, --symbols A,B, --seed, and --replay FILE for a
simulator that replays recordings. A flag sets the settings key of its name (--max-connections
sets max_connections); a flag not given leaves the key's default. Bad flags exit with code 2, a
server that cannot start (a port in use, an unreadable file) with code 1.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

import uvloop

from tickmesh.runtime import process
from tickmesh.runtime.logs import configure_logging
from tickmesh.runtime.metrics import Counts
from tickmesh.runtime.settings import CommaStrings, SettingsError, read, require

S = TypeVar("S")
Server = Callable[[S, Counter, Callable[[], None]], Awaitable[None]]
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY", "NVDA", "TSLA")


@dataclass(frozen=True, kw_only=True)
class SimulatorSettings:
    """The keys every simulator has; each gives port and rate its default and its meaning."""

    host: str = "127.0.0.1"
    port: int
    rate: float
    symbols: CommaStrings = DEFAULT_SYMBOLS
    seed: int = 0
    """Of the simulator's own random details (sizes, exchanges, the mix of messages); 0:
    different every run. Prices follow the shared market (handlers/common/market.py) whatever
    the seed, the same at every provider."""

    def __post_init__(self) -> None:
        require(0 <= self.port <= 65535, "port", "an integer from 0 to 65535", self.port)
        require(self.rate > 0, "rate", "a number > 0", self.rate)

    def listen_address(self) -> tuple[str, int]:
        """Where it will listen: checked to be free before a system starts."""
        return self.host, self.port


def run_child(run_server: Server[S], settings: type[S]) -> None:
    async def main(ctx: process.ProcessContext[S]) -> None:
        await run_server(ctx.settings, ctx.counts, ctx.ready)

    process.run(main, settings, announces_ready=True)


def parser(provider: str, description: str, rate: str, replay: str = "") -> argparse.ArgumentParser:
    """The shared flags, with the provider's meaning of --rate and --replay (none: no --replay)."""
    command = argparse.ArgumentParser(prog=f"tickmesh sim {provider}", description=description,
                                      allow_abbrev=False)
    command.add_argument("--host", help="the address to listen on")
    command.add_argument("--port", type=int)
    command.add_argument("--rate", type=float, help=rate)
    command.add_argument("--symbols", help="comma-separated, e.g. AAPL,MSFT")
    command.add_argument("--seed", type=int, help="of the random details: sizes, exchanges... "
                         "(0: new every run; prices are the shared market's)")
    if replay:
        command.add_argument("--replay", metavar="FILE", help=replay)
    return command


def run_cli(parser: argparse.ArgumentParser, argv: list[str], settings: type[S],
            run_server: Server[S]) -> None:
    """Serve with the settings the flags give (the parser is one of `parser()`), until ^C."""
    flags = {key: value for key, value in vars(parser.parse_args(argv)).items()
             if value is not None}
    try:
        parsed = read(settings, flags)
    except SettingsError as exc:
        parser.error(str(exc))
    configure_logging(f"{parser.prog.rsplit(' ', 1)[-1]}-sim")
    try:
        uvloop.run(run_server(parsed, Counts(), lambda: None))
    except (OSError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: {exc}\n")
    except KeyboardInterrupt:
        pass
