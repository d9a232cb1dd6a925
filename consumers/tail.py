"""The tail consumer: prints live events from the bus, one line each.

JSON lines (the events' wire keys) when stdout is a pipe or a file, a compact human line when
it is a terminal. Gaps (messages this subscriber lost) are reported on stderr (supervised: as
log lines, the 1st, 2nd, 4th, 8th... of them; bus_gaps counts them all).

    tickmesh tail 'trade.*.AAPL' 'quote.alpaca.*' [--count N] [--json]   (print_events)
    python -m tickmesh.consumers.tail          (supervised; settings: patterns = [...], json = false)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence, TextIO

import msgspec

from tickmesh.bus import events
from tickmesh.bus.sequence import PublisherSilent, PublisherStopped
from tickmesh.bus.subscriber import AsyncSubscriber, Gap, Subscriber
from tickmesh.bus.topics import TopicError
from tickmesh.consumers.books.exact import exact
from tickmesh.runtime import process
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.logs import log
from tickmesh.runtime.settings import SettingsError, Strings
from tickmesh.tailing import check_pattern

DEFAULT_PATTERNS = ("trade", "quote")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The supervised tail's settings table."""

    patterns: Strings = DEFAULT_PATTERNS
    json: bool = False

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            try:
                check_pattern(pattern)  # well formed, of a known kind
            except TopicError as exc:
                raise SettingsError(f"settings.patterns: {exc}") from None


def format_json(event: events.Event) -> str:
    return msgspec.json.encode(event).decode()


def format_pretty(event: events.Event) -> str:
    seconds, nanos = divmod(event.ts_event, 1_000_000_000)
    clock = datetime.fromtimestamp(seconds, timezone.utc).strftime("%H:%M:%S") + f".{nanos // 1000:06d}"
    kind = event.__struct_config__.tag
    return f"{clock}  {kind:<13} {event.provider:<10} {event.symbol:<9} {_details(event)}"


def _details(event: events.Event) -> str:
    """Prices and sizes as received (consumers.books.exact)."""
    match event:
        case events.Trade():
            return f"{exact(event.price)} x {exact(event.size)}  {event.exchange} {','.join(event.conditions)}"
        case events.Quote():
            return f"{exact(event.bid_price)} x {exact(event.bid_size)}  /  {exact(event.ask_price)} x {exact(event.ask_size)}"
        case events.BookSnapshot() | events.BookDelta() | events.Depth():
            return f"{len(event.bids)} bids, {len(event.asks)} asks"
        case events.Bbo():
            return f"{exact(event.bid_price)} x {exact(event.bid_size)}  /  {exact(event.ask_price)} x {exact(event.ask_size)}"
        case events.BookStatus():
            return f"{event.state} {event.message}"
        case events.Bar():
            return (f"{event.interval_s}s  o {exact(event.open)} h {exact(event.high)} l {exact(event.low)} "
                    f"c {exact(event.close)} v {exact(event.volume)}")
        case events.Status():
            code = f" [{event.code}]" if event.code else ""
            return f"{event.state}{code} {event.message}"
        case events.Heartbeat():
            return " ".join(f"{s.name}{_labels(s.labels)}={s.value:g}" for s in event.metrics
                            if s.kind != "histogram")
        case events.Control():
            return f"{event.action} from {event.sender}"
    return ""


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in labels.items()) + "}" if labels else ""


def formatter_for(stream: TextIO, force_json: bool = False) -> Callable[[events.Event], str]:
    return format_pretty if stream.isatty() and not force_json else format_json


def report_gap(gap: Gap) -> None:
    print(f"gap on {gap.topic.decode(errors='replace')}: lost {gap.missed} "
          f"(expected seq {gap.expected}, got {gap.received})", file=sys.stderr, flush=True)


def report_publisher(notice: PublisherSilent | PublisherStopped) -> None:
    what = "stopped" if isinstance(notice, PublisherStopped) else \
        f"silent for {notice.silent_for:.1f} s"
    print(f"publisher {notice.name} (epoch {notice.epoch}) {what}", file=sys.stderr, flush=True)


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def print_events(endpoint: str | tuple[str, ...], patterns: Sequence[str], count: int = 0,
                 force_json: bool = False) -> None:
    """Print the events matching `patterns` (checked already; none: DEFAULT_PATTERNS) from the
    forwarder's subscribe `endpoint` until interrupted, or until `count` are printed (0: no
    end): `tickmesh tail`."""
    fmt = formatter_for(sys.stdout, force_json)
    printed = 0
    try:
        with Subscriber(endpoint, list(patterns or DEFAULT_PATTERNS), on_gap=report_gap,
                        on_publisher=report_publisher) as sub:
            for event in sub:
                _write(fmt(event))
                printed += 1
                if printed == count:
                    return
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): nothing left to say


async def _supervised(ctx: process.ProcessContext[Settings]) -> None:
    fmt = formatter_for(sys.stdout, ctx.settings.json)
    counts = ctx.counts

    def on_gap(gap: Gap) -> None:  # a log line (JSON), as every supervised process's
        counts["bus_messages_missed"] += gap.missed
        count_bad_input(counts, "bus_gaps", log(), "bus gap",
                        topic=gap.topic.decode(errors="replace"), missed=gap.missed)

    sub = AsyncSubscriber(ctx.spec.bus.subscribe_endpoints, ctx.settings.patterns, on_gap=on_gap)
    try:
        async for event in sub:
            counts["events_received"] += 1
            _write(fmt(event))
            counts["lines_printed"] += 1
    finally:
        sub.close()


def main() -> None:
    process.run(_supervised, Settings)


if __name__ == "__main__":
    main()
