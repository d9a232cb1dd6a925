"""What every provider's simulator shares: the common keys of its settings, its command line,
and its two ways to run.

A simulator module defines `SimSettings` (a `SimulatorSettings` with its own defaults and
keys), a simulator class made from its settings and counters with `async def serve(ready)`
(serve until cancelled, calling `ready()` once it listens: the supervisor starts the handlers
that wait for it then; the WebSocket ones: handlers.common.simserver), and ends with:

    COMMAND = simulator.Command("alpaca", Simulator, SimSettings, "A local ...",
                                rate="...", replay="...",          # the shared flags' meaning
                                flags={"--blast": {"type": int}})  # the provider's own flags
    Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

    if __name__ == "__main__":
        main()

`main()` runs it supervised (settings from TICKMESH_CHILD), `cli(argv)` by hand (`tickmesh sim
PROVIDER ...`, no bus, until ^C). The shared flags: --host, --port, --rate, --symbols A,B,
--seed, and --replay FILE for a simulator that replays recordings. A flag sets the settings key
of its name (--max-connections sets max_connections); a flag not given leaves the key's
default. Bad flags exit with code 2, a server that cannot start (a port in use, an unreadable
file) with code 1.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Mapping, Protocol, TypeVar

import uvloop

from tickmesh.runtime import process
from tickmesh.runtime.logs import configure_logging
from tickmesh.runtime.metrics import Counts
from tickmesh.runtime.settings import CommaStrings, SettingsError, read, require

S = TypeVar("S")
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


class Simulator(Protocol):
    async def serve(self, ready: Callable[[], None]) -> None: ...


@dataclass(frozen=True)
class Command(Generic[S]):
    """A simulator module's two ways to run (the module's doc)."""

    provider: str
    simulator: Callable[[S, Counter], Simulator]
    settings: type[S]
    description: str
    rate: str
    """What --rate means here."""
    replay: str = ""
    """What --replay reads ("": the simulator has no --replay)."""
    flags: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The provider's own flags: name -> argparse's add_argument options."""

    async def run_server(self, settings: S, counts: Counter, ready: Callable[[], None]) -> None:
        await self.simulator(settings, counts).serve(ready)

    def main(self) -> None:
        """Supervised: settings from TICKMESH_CHILD."""
        async def work(ctx: process.ProcessContext[S]) -> None:
            await self.run_server(ctx.settings, ctx.counts, ctx.ready)

        process.run(work, self.settings, announces_ready=True)

    def cli(self, argv: list[str]) -> None:
        """`tickmesh sim PROVIDER ...`: serve with the settings the flags give, until ^C."""
        command = self.parser()
        given = {key: value for key, value in vars(command.parse_args(argv)).items()
                 if value is not None}
        try:
            parsed = read(self.settings, given)
        except SettingsError as exc:
            command.error(str(exc))
        configure_logging(f"{self.provider}-sim")
        try:
            uvloop.run(self.run_server(parsed, Counts(), lambda: None))
        except (OSError, ValueError) as exc:
            command.exit(1, f"{command.prog}: {exc}\n")
        except KeyboardInterrupt:
            pass

    def parser(self) -> argparse.ArgumentParser:
        command = argparse.ArgumentParser(prog=f"tickmesh sim {self.provider}",
                                          description=self.description, allow_abbrev=False)
        command.add_argument("--host", help="the address to listen on")
        command.add_argument("--port", type=int)
        command.add_argument("--rate", type=float, help=self.rate)
        command.add_argument("--symbols", help="comma-separated, e.g. AAPL,MSFT")
        command.add_argument("--seed", type=int, help="of the random details: sizes, exchanges"
                             "... (0: new every run; prices are the shared market's)")
        if self.replay:
            command.add_argument("--replay", metavar="FILE", help=self.replay)
        for name, options in self.flags.items():
            command.add_argument(name, **options)
        return command
