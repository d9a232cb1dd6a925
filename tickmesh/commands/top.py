"""show a live dashboard of the running system: processes, feeds, top of book (--once: a frame)

    tickmesh top [CONFIG] [--symbols AAPL,BTC-USD] [--interval 1] [--once] [--width N]

It asks the supervisor for its status every --interval seconds, and takes from the bus only
the quote and bbo topics of the --symbols (an ordinary subscriber: if it falls behind, it
loses its own messages and slows nobody). Without --symbols, those of the system's config: the
first symbol of each handler child (a child, other than a simulator, whose settings have
`symbols`), then their second ones, DEFAULT_SYMBOLS in all. On a terminal it redraws in place
until `q` or Ctrl-C (keys are read in cbreak mode, the terminal restored on exit); without one
it prints a plain-text frame every interval. --once prints one frame and exits,
after two polls (for the rates) and once every symbol has a quote (or after 3 s without).
Exit 1 if no supervisor answers.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import time
import tty
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.live import Live

from tickmesh.bus.events import Bbo, Quote
from tickmesh.bus.sockets import BusConfig
from tickmesh.bus.subscriber import Subscriber
from tickmesh.bus.topics import TERMINATOR
from tickmesh.supervisor import config as system_config
from tickmesh.supervisor.control import NoSupervisor, request_status
from tickmesh.dashboard import Model, history_length, render
from tickmesh.system import EXIT_NO_SUPERVISOR, EXIT_USAGE, die, find

STATUS_TIMEOUT = 2.0
"""Seconds to wait for each status answer."""
BOOK_WAIT = 3.0
"""--once: seconds to wait, at most, for a quote of every symbol."""
PLAIN_WIDTH = 132
"""Columns of a frame printed without a terminal, unless --width says otherwise."""
DEFAULT_SYMBOLS = 3
"""Without --symbols: how many of the config's symbols the book shows."""
KEY_CHECK = 0.1
"""Seconds, at most, between two looks for a key pressed while the bus is read."""
QUIT_KEYS = b"qQ"


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?")
    parser.add_argument("--symbols", default="", help="top of book of these, comma-separated "
                        "(e.g. AAPL,BTC-USD; as the bus spells them)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between status polls and frames (1)")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument("--width", type=int, help="columns (default: the terminal's, or "
                        f"{PLAIN_WIDTH} without one)")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    if args.interval <= 0:
        die("--interval must be positive", EXIT_USAGE)
    chosen = symbols(args.symbols)
    system = find(args.config)
    model = Model(chosen or config_symbols(system.get("config")), history_length(args.interval))
    with Inputs(system["control"], BusConfig.from_dict(system["bus"]).subscribe_endpoints,
                model) as inputs:
        if not inputs.poll():
            die(f"{model.error} (run dir {system['run_dir']})", EXIT_NO_SUPERVISOR)
        console = _console(args.width)
        try:
            if args.once:
                _once(inputs, args.interval, console)
            elif console.is_terminal:
                with Keys() as keys:
                    _live(inputs, args.interval, console, keys.quit)
            else:
                _plain(inputs, args.interval, console)
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            sys.stderr.close()  # the reader went away (`| head`): nothing left to say


def symbols(text: str) -> tuple[str, ...]:
    """The comma-separated symbols of --symbols (exit 2 for one no topic can have)."""
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for symbol in chosen:
        if symbol == "*" or TERMINATOR in symbol:
            die(f"--symbols: {symbol!r} is not a symbol", EXIT_USAGE)
    return chosen


def config_symbols(path: str | None, count: int = DEFAULT_SYMBOLS) -> tuple[str, ...]:
    """The first symbol of each handler child of the config at `path` (a child whose settings
    have a list of `symbols`, other than a simulator), then their second ones, and so on:
    `count` different ones at most. None if the config cannot be read."""
    try:
        loaded = system_config.load(path) if path else None
    except (system_config.ConfigError, OSError):
        loaded = None
    lists = [child.settings["symbols"] for child in (loaded.children if loaded else ())
             if ".sim." not in f".{child.run}." and isinstance(child.settings.get("symbols"), list)]
    chosen: dict[str, None] = {}
    for rank in range(max(map(len, lists), default=0)):
        for listed in lists:
            if rank < len(listed) and isinstance(listed[rank], str) and len(chosen) < count:
                chosen[listed[rank]] = None
    return tuple(chosen)


def book_patterns(chosen: tuple[str, ...], providers: set[str]) -> list[str]:
    """The quote and bbo topics of the chosen symbols: of each known provider exactly (libzmq
    filters them), or of any provider while none is known yet."""
    sources = sorted(providers) or ["*"]
    return [f"{kind}.{source}.{symbol}" for symbol in chosen for kind in ("quote", "bbo")
            for source in sources]


class Inputs:
    """What the dashboard reads into its model: the supervisor's status, one request per
    poll, and, between polls, the bus's quotes and bbos of the chosen symbols."""

    def __init__(self, control: str, subscribe: tuple[str, ...], model: Model) -> None:
        self.model = model
        self._control = control
        self._subscribe = subscribe
        self._patterns: list[str] = []
        self._subscriber: Subscriber | None = None

    def poll(self) -> bool:
        """Ask for the status (False if the supervisor does not answer), and follow the
        topics of any new feed's provider."""
        try:
            self.model.observe_status(request_status(self._control, STATUS_TIMEOUT))
        except NoSupervisor as exc:
            self.model.observe_failure(str(exc))
            return False
        self._follow(book_patterns(self.model.symbols, self.model.providers))
        return True

    def listen(self, until: float, quit: Callable[[float], bool] | None = None) -> bool:
        """Take quotes and bbos from the bus until `until` (time.monotonic()), or until
        `quit(wait)` (which may wait up to `wait` s for a key) says to: then True."""
        while (left := until - time.monotonic()) > 0:
            if self._subscriber is None:
                if quit is None:
                    time.sleep(left)
                elif quit(left):
                    return True
                continue
            event = self._subscriber.recv(timeout=left if quit is None else min(left, KEY_CHECK))
            if isinstance(event, (Quote, Bbo)):
                self.model.observe_top(event)
            if quit is not None and quit(0.0):
                return True
        return False

    def _follow(self, patterns: list[str]) -> None:
        if patterns == self._patterns:
            return
        self.close()
        self._patterns = patterns
        self._subscriber = Subscriber(self._subscribe, patterns)

    def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None

    def __enter__(self) -> "Inputs":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Keys:
    """The keys pressed on the terminal of stdin, read without waiting for a line (cbreak
    mode, set on entry and restored on exit, whatever ends the block); with no terminal on
    stdin, no key is ever pressed."""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> "Keys":
        try:
            if sys.stdin is not None and os.isatty(fd := sys.stdin.fileno()):
                self._saved = termios.tcgetattr(fd)
                tty.setcbreak(fd)
                self._fd = fd
        except (OSError, ValueError, termios.error):
            self._fd = None
        return self

    def quit(self, wait: float) -> bool:
        """Whether `q` was pressed, waiting up to `wait` s for a key."""
        if self._fd is None:
            if wait > 0:
                time.sleep(wait)
            return False
        if not select.select([self._fd], [], [], wait)[0]:
            return False
        pressed = os.read(self._fd, 1024)
        return not pressed or any(key in QUIT_KEYS for key in pressed)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._fd = None


def _cycles(inputs: Inputs, interval: float,
            quit: Callable[[float], bool] | None = None) -> Iterator[None]:
    """Listen to the bus until the next poll, poll, and yield: once every `interval` s (and
    stop once `quit` says to)."""
    next_poll = time.monotonic()
    while True:
        next_poll += interval
        if inputs.listen(next_poll, quit):
            return
        inputs.poll()
        yield


def _once(inputs: Inputs, interval: float, console: Console) -> None:
    deadline = time.monotonic() + BOOK_WAIT
    for _ in _cycles(inputs, interval):
        if not inputs.model.waiting() or time.monotonic() >= deadline:
            break
    console.print(render(inputs.model, time.time()))


def _live(inputs: Inputs, interval: float, console: Console,
          quit: Callable[[float], bool]) -> None:
    with Live(render(inputs.model, time.time()), console=console, auto_refresh=False) as live:
        for _ in _cycles(inputs, interval, quit):
            live.update(render(inputs.model, time.time()), refresh=True)


def _plain(inputs: Inputs, interval: float, console: Console) -> None:
    for _ in _cycles(inputs, interval):
        console.print(render(inputs.model, time.time()))
        console.print()


def _console(width: int | None) -> Console:
    """Colors and redrawing on a terminal; plain text, no escape codes, on anything else."""
    terminal = sys.stdout.isatty()
    return Console(force_terminal=terminal, width=width or (None if terminal else PLAIN_WIDTH),
                   highlight=False)
