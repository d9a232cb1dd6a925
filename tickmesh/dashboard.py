"""What `tickmesh top` shows, without a terminal: the model (the supervisor's last status
answer, each child's recent event rates, the latest quote and bbo of each chosen symbol) and
pure functions from it to rich renderables, so that every frame can be tested as text.

The status answer is read defensively: a key it lacks (an older supervisor, a child without
health yet) is shown as "-", never an error.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tickmesh.bus.events import Bbo, Quote

NONE = "-"
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SPARK_SECONDS = 30.0
"""The stretch of time a feed's sparkline covers."""
STATE_STYLES = {"running": "green", "starting": "yellow", "backoff": "red", "failed": "bold red",
                "stopping": "yellow", "stopped": "dim", "exited": "yellow"}

Top = Quote | Bbo
Answer = Mapping[str, Any]
"""The supervisor's answer to `status` (supervisor.control)."""


@dataclass
class Model:
    """What the dashboard knows so far. `history` is the number of rate samples kept per child
    (one per status poll); `providers` are the providers of every feed seen."""

    symbols: tuple[str, ...]
    history: int
    status: Answer | None = None
    error: str = ""
    providers: set[str] = field(default_factory=set)
    rates: dict[str, deque[float | None]] = field(default_factory=dict)
    tops: dict[tuple[str, str, str], Top] = field(default_factory=dict)

    def observe_status(self, status: Answer) -> None:
        """A status answer: kept, with each child's events per second appended to its history
        (None when it has no health)."""
        self.status, self.error = status, ""
        for name, child in children(status).items():
            health = child.get("health") or {}
            samples = self.rates.setdefault(name, deque(maxlen=self.history))
            samples.append(health.get("events_per_second"))
            if (provider := (health.get("feed") or {}).get("provider")) is not None:
                self.providers.add(provider)

    def observe_failure(self, message: str) -> None:
        """The supervisor did not answer: its last answer stays on screen, with `message`."""
        self.error = message

    def observe_top(self, event: Top) -> None:
        self.tops[event.symbol, event.provider, event.__struct_config__.tag] = event

    def waiting(self) -> list[str]:
        """The chosen symbols without any quote or bbo yet."""
        seen = {symbol for symbol, _, _ in self.tops}
        return [symbol for symbol in self.symbols if symbol not in seen]


def history_length(interval: float) -> int:
    """Rate samples, one per poll every `interval` s, that cover SPARK_SECONDS."""
    return max(2, round(SPARK_SECONDS / interval))


def children(status: Answer | None) -> Mapping[str, Mapping[str, Any]]:
    return (status or {}).get("children") or {}


def feeds(status: Answer | None) -> dict[str, Mapping[str, Any]]:
    """The children whose health has a feed, by name."""
    return {name: child for name, child in children(status).items()
            if (child.get("health") or {}).get("feed")}


# --- the frame ---------------------------------------------------------------------------

def render(model: Model, now: float) -> RenderableType:
    """One whole frame; `now` is the wall clock (Unix seconds), for the quotes' ages."""
    parts: list[RenderableType] = [header(model, now), processes_table(model.status),
                                   feeds_table(model.status, model.rates)]
    if model.symbols:
        parts.append(book_table(model.symbols, model.tops, now))
    return Group(*(line for part in parts for line in (part, Text())))


def header(model: Model, now: float) -> Text:
    status = model.status or {}
    clock = datetime.fromtimestamp(now).strftime("%H:%M:%S")
    text = Text(f"tickmesh top  {clock}  supervisor pid {_cell(status.get('pid'))}  "
                f"config {_cell(status.get('config'))}", style="bold")
    if model.error:
        text.append(f"\nno answer: {model.error} (showing the last one)", style="bold red")
    return text


def processes_table(status: Answer | None) -> Table:
    table = _table("Processes", ("process", "state", "pid", "uptime", "restarts", "cpu %",
                                 "rss"), right=(2, 3, 4, 5, 6))
    supervisor = (status or {}).get("supervisor") or {}
    if status:
        table.add_row(*_process_row(supervisor.get("name", "supervisor"),
                                    {"state": "running", "pid": status.get("pid"), **supervisor}))
    for name, child in children(status).items():
        table.add_row(*_process_row(name, child))
    return table


def _process_row(name: str, process: Mapping[str, Any]) -> list[Text]:
    state = process.get("state")
    return [Text(name), Text(_cell(state), style=STATE_STYLES.get(state, "")),
            Text(_cell(process.get("pid"))), Text(duration(process.get("uptime"))),
            Text(_cell(process.get("restarts"))), Text(_number(process.get("cpu_percent"), 1)),
            Text(size(process.get("rss_bytes")))]


def feeds_table(status: Answer | None, rates: Mapping[str, Iterable[float | None]]) -> Table:
    table = _table("Feeds", ("feed", "provider", "state", "events/s", f"last {SPARK_SECONDS:g} s",
                             "last event", "gaps", "reconnects", "p50 ms", "p99 ms",
                             "last error"), right=(3, 5, 6, 7, 8, 9))
    for name, child in feeds(status).items():
        table.add_row(*_feed_row(name, child["health"], rates.get(name, ())))
    if not table.row_count:
        table.caption = "no feeds: no child's health names one (yet)"
    return table


def _feed_row(name: str, health: Mapping[str, Any], rates: Iterable[float | None]) -> list[Text]:
    feed = health["feed"]
    state = _cell(feed.get("state"))
    if resyncing := feed.get("resyncing"):
        state += f" ({len(resyncing)} resyncing)"
    return [Text(name), Text(_cell(feed.get("provider"))),
            Text(state, style="green" if feed.get("connected") else "red"),
            Text(_number(health.get("events_per_second"), 1)), Text(sparkline(rates)),
            Text(age(health.get("last_event_age"))), Text(_cell(health.get("gaps"))),
            Text(_cell(health.get("reconnects"))), Text(millis(health.get("latency_p50"))),
            Text(millis(health.get("latency_p99"))),
            Text(error(feed.get("last_error")), style="red")]


def book_table(symbols: Iterable[str], tops: Mapping[tuple[str, str, str], Top],
               now: float) -> Table:
    """A row per symbol and source (a provider's quotes, the book builder's bbo of that
    provider's book), in the order the symbols were chosen; "no quote yet" for a symbol
    without any."""
    table = _table("Top of book", ("symbol", "bid size x price", "ask price x size", "spread",
                                   "provider", "from", "age"), right=(1, 3, 6))
    for symbol in symbols:
        rows = sorted(key for key in tops if key[0] == symbol)
        for key in rows:
            table.add_row(*_book_row(tops[key], now))
        if not rows:
            table.add_row(Text(symbol), Text(NONE), Text(NONE), Text(NONE), Text(NONE),
                          Text(NONE), Text("no quote yet", style="yellow"))
    return table


def _book_row(top: Top, now: float) -> list[Text]:
    return [Text(top.symbol), Text(side(top.bid_size, top.bid_price)),
            Text(side(top.ask_price, top.ask_size, price_first=True)),
            Text(spread(top)), Text(top.provider), Text(top.__struct_config__.tag),
            Text(age(max(0.0, now - top.ts_recv / 1e9)))]


def _table(title: str, columns: Iterable[str], right: Iterable[int]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold",
                  caption_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    aligned = set(right)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index in aligned else "left", no_wrap=True,
                         overflow="ellipsis")
    return table


# --- values --------------------------------------------------------------------------------

def sparkline(values: Iterable[float | None]) -> str:
    """One block per value, scaled to the largest; a blank where there was no value."""
    values = list(values)
    top = max((value for value in values if value is not None), default=0.0)
    steps = len(SPARK_BLOCKS) - 1
    return "".join(" " if value is None else
                   SPARK_BLOCKS[round(value / top * steps) if top > 0 else 0]
                   for value in values)


def duration(seconds: float | None) -> str:
    """12s, 4m05s, 2h05m, 3d04h."""
    if seconds is None:
        return NONE
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age(seconds: float | None) -> str:
    """Tenths of a second below ten seconds, else as a duration."""
    if seconds is None:
        return NONE
    return f"{seconds:.1f}s" if seconds < 10 else duration(seconds)


def size(count: float | None) -> str:
    """Bytes, in binary units."""
    if count is None:
        return NONE
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while count >= 1024 and power < len(units) - 1:
        count, power = count / 1024, power + 1
    return f"{count:.0f} B" if power == 0 else f"{count:.1f} {units[power]}"


def millis(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 1 else f"{ms:.1f}"


def error(last: Mapping[str, Any] | None) -> str:
    if not last:
        return ""
    code = last.get("code")
    return f"[{code}] {last.get('message', '')}" if code else str(last.get("message", ""))


def side(first: float, second: float, price_first: bool = False) -> str:
    """`size x price` of a bid (`price x size` of an ask); "-" for an empty side."""
    price = first if price_first else second
    return NONE if price == 0 else f"{first:.10g} x {second:.10g}"


def spread(top: Top) -> str:
    if top.bid_price == 0 or top.ask_price == 0:
        return NONE
    return f"{top.ask_price - top.bid_price:.10g}"


def _number(value: float | None, decimals: int) -> str:
    return NONE if value is None else f"{value:.{decimals}f}"


def _cell(value: Any) -> str:
    return NONE if value is None else str(value)
