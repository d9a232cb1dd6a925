"""The normalized event schema: every event on the bus is one of these, msgpack-encoded as a map.

Python attribute names are descriptive; the wire keys are short (see docs/events.md). The kind
is the tag field `k`, written first. `q` (sequence) and `e` (epoch) are filled in by the
Publisher just before encoding.
"""

from __future__ import annotations

from typing import Union

import msgspec

SCHEMA_VERSION = 2
"""2: heartbeats carry typed metric samples (`m`) instead of a map of counters (`ct`); the
`control`, `bbo`, `depth`, `book_status` and `alert` kinds; `ns`, the venue's own symbol."""

STATUS_STATES = ("connecting", "connected", "authenticated", "subscribed", "disconnected", "error",
                 "resyncing")
"""The last is one symbol's: its book is being rebuilt (a snapshot follows)."""
BOOK_STATES = ("live", "stale", "resyncing", "crossed")
ALERT_STATES = ("raised", "cleared")
CHECKSUMS = {"kraken-crc32": "Kraken's CRC32 of the top 10 asks and bids, on every update"}
"""The values of BookSnapshot.checksum: the venue checksums a handler verifies books with."""

PriceLevel = tuple[float, float]
"""(price, size); in a delta, size 0.0 removes the level."""


class Event(msgspec.Struct, kw_only=True, tag_field="k", gc=False):
    """Fields every event carries. (gc=False: the garbage collector does not track events,
    which hold no reference cycles and are made by the million.)"""

    version: int = msgspec.field(default=SCHEMA_VERSION, name="v")
    provider: str = msgspec.field(name="p")
    symbol: str = msgspec.field(default="", name="s")
    native_symbol: str = msgspec.field(default="", name="ns")
    """The venue's own spelling where it differs from `symbol` (BTCUSDT for BTC-USDT)."""
    ts_event: int = msgspec.field(name="te")
    ts_recv: int = msgspec.field(name="tr")
    seq: int = msgspec.field(default=0, name="q")
    epoch: int = msgspec.field(default=0, name="e")


class Trade(Event, tag="trade"):
    price: float = msgspec.field(name="px")
    size: float = msgspec.field(name="sz")
    trade_id: str = msgspec.field(default="", name="id")
    side: str = msgspec.field(default="", name="sd")
    """Aggressor side: "b" buy, "s" sell, "" unknown."""
    exchange: str = msgspec.field(default="", name="x")
    conditions: list[str] = msgspec.field(default_factory=list, name="c")


class Quote(Event, tag="quote"):
    bid_price: float = msgspec.field(name="bp")
    bid_size: float = msgspec.field(name="bs")
    ask_price: float = msgspec.field(name="ap")
    ask_size: float = msgspec.field(name="as")
    bid_exchange: str = msgspec.field(default="", name="bx")
    ask_exchange: str = msgspec.field(default="", name="ax")


class BookSnapshot(Event, tag="book_snapshot"):
    """The whole book: bids best (highest) first, asks best (lowest) first. `generation` counts
    the symbol's snapshots in this publisher's life (1, 2, ...). `delta_seq` is the sequence
    number of the last book_delta the publisher sent on the symbol's delta topic before this
    snapshot (0: none; the Publisher stamps it): the deltas that follow the snapshot are
    numbered delta_seq + 1, + 2, ..., so a reader knows whether it missed one even when the
    snapshot is the first thing it heard (-1: unknown, an older recording). `checksum` names
    the venue's checksum the handler verified every update of this generation against before
    publishing its delta (CHECKSUMS; "": the venue sends none, the book is not so verified)."""

    bids: list[PriceLevel] = msgspec.field(name="b")
    asks: list[PriceLevel] = msgspec.field(name="a")
    generation: int = msgspec.field(default=0, name="g")
    delta_seq: int = msgspec.field(default=-1, name="dq")
    checksum: str = msgspec.field(default="", name="ck")


class BookDelta(Event, tag="book_delta"):
    """Changed levels only, each with its new absolute size; size 0.0 removes the level.
    `generation` is that of the snapshot it applies to: a delta of a newer generation than
    the book a reader holds means the reader missed a snapshot (its topic is another one)."""

    bids: list[PriceLevel] = msgspec.field(name="b")
    asks: list[PriceLevel] = msgspec.field(name="a")
    generation: int = msgspec.field(default=0, name="g")


class Bbo(Event, tag="bbo"):
    """Best bid and offer of a book the order-book builder keeps, when its top changed (at most
    once a book per batch of events the builder reads off the bus)."""

    bid_price: float = msgspec.field(name="bp")
    bid_size: float = msgspec.field(name="bs")
    ask_price: float = msgspec.field(name="ap")
    ask_size: float = msgspec.field(name="as")


class Depth(Event, tag="depth"):
    """The top levels of a book the builder keeps, at its configured rate; best first."""

    bids: list[PriceLevel] = msgspec.field(name="b")
    asks: list[PriceLevel] = msgspec.field(name="a")


class BookStatus(Event, tag="book_status"):
    """A book's state changed (one of BOOK_STATES): only a live book is published as truth."""

    state: str = msgspec.field(name="st")
    message: str = msgspec.field(default="", name="msg")


class Alert(Event, tag="alert"):
    """The heartbeat monitor raised or cleared an alert (ALERT_STATES) about `provider` (a
    process or a feed) and, where it concerns one, `symbol`. `what` names the check (e.g.
    heartbeat_stopped, silent_connection, symbol_stale, reconnect_storm, gap_rate); `message`
    says why, with the numbers."""

    state: str = msgspec.field(name="st")
    what: str = msgspec.field(name="w")
    message: str = msgspec.field(default="", name="msg")


class Bar(Event, tag="bar"):
    """An aggregate over [ts_event, ts_event + interval_s)."""

    interval_s: int = msgspec.field(name="iv")
    open: float = msgspec.field(name="o")
    high: float = msgspec.field(name="h")
    low: float = msgspec.field(name="l")
    close: float = msgspec.field(name="cl")
    volume: float = msgspec.field(name="vol")
    vwap: float = msgspec.field(default=0.0, name="vw")
    trades: int = msgspec.field(default=0, name="n")


class Status(Event, tag="status"):
    """A connection state change of a handler (state is one of STATUS_STATES)."""

    state: str = msgspec.field(name="st")
    message: str = msgspec.field(default="", name="msg")
    code: int = msgspec.field(default=0, name="code")


class Control(Event, tag="control"):
    """A request to a handler, over the bus: topic `control.PROVIDER.SYMBOL`, where `provider`
    is the handler addressed (its topic source) and `sender` the process asking. The one action
    handlers know today is "resync": get a fresh snapshot of `symbol`."""

    action: str = msgspec.field(name="act")
    sender: str = msgspec.field(default="", name="from")


class Sample(msgspec.Struct, array_like=True, gc=False):
    """One metric's value, on the wire as [name, kind, labels, value] (runtime.metrics has the
    schema of names; docs/metrics.md lists them)."""

    name: str
    kind: str  # counter | gauge | histogram
    labels: dict[str, str]
    value: float


class Heartbeat(Event, tag="heartbeat"):
    """Each process (the forwarder and the supervisor too), every second. `provider` holds the
    process name; `metrics` its registry's samples (counters are cumulative). `final`: the
    process is stopping on purpose (SIGTERM, its work ended, or it crashed and exits): the last
    heartbeat of this publisher epoch; a process killed outright sends none, and falls silent."""

    pid: int = msgspec.field(name="pid")
    metrics: list[Sample] = msgspec.field(default_factory=list, name="m")
    final: bool = msgspec.field(default=False, name="fin")

    def metric(self, name: str, **labels: str) -> float:
        """The value of the sample `name` with these labels (all of its labels); 0.0 if none."""
        for sample in self.metrics:
            if sample.name == name and sample.labels == labels:
                return sample.value
        return 0.0


AnyEvent = Union[Trade, Quote, BookSnapshot, BookDelta, Bbo, Depth, BookStatus, Bar, Status,
                 Heartbeat, Control, Alert]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)

encode = _encoder.encode
"""Event -> msgpack bytes (a standard msgpack map; any msgpack library decodes it)."""

encode_into = _encoder.encode_into
"""encode_into(event, buffer): the same bytes as `encode`, written over a reusable bytearray
(which is resized to fit): no new bytes object per event, for the publisher's hot path."""


decode = _decoder.decode
"""decode(payload): msgpack bytes -> typed event (AnyEvent). Raises msgspec.DecodeError /
ValidationError on bad input."""

