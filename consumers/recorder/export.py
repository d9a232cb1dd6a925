"""A recording as Parquet tables, one per event kind (DIR/trade.parquet, DIR/quote.parquet,
...), readable by pandas, polars or any Parquet reader: what `tickmesh export` does (its
arguments are tickmesh.commands.export's).

Columns are the events' attribute names (bus.events; docs/events.md): `ts_event`, `ts_recv`
and the recorder's `recorded_at` as timestamp[ns, UTC]; prices, sizes and other floats as
float64; integers (seq, epoch, ...) as int64; strings as string; flags (a heartbeat's
`final`) as bool; lists as lists (book levels as list<list<float64>>, heartbeat metrics as
list<struct<name, kind, labels, value>>). Events that cannot be decoded, of an unknown kind,
or of a newer schema version than this tickmesh are skipped and counted; damaged records are
skipped (consumers.recorder.recording; `Recording.problems()` says which).
"""

from __future__ import annotations

import typing
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from tickmesh.bus import events
from tickmesh.consumers.recorder.recording import MESSAGE, Recording

ROWS_PER_GROUP = 100_000
TIMESTAMPS = ("ts_event", "ts_recv")
UTC_NS = pa.timestamp("ns", tz="UTC")
KINDS: dict[str, type] = {cls.__struct_config__.tag: cls
                          for cls in typing.get_args(events.AnyEvent)}
_SAMPLE = pa.struct([("name", pa.string()), ("kind", pa.string()),
                     ("labels", pa.map_(pa.string(), pa.string())), ("value", pa.float64())])
_ARROW_TYPES: dict[Any, pa.DataType] = {
    int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(),
    list[str]: pa.list_(pa.string()),
    list[events.PriceLevel]: pa.list_(pa.list_(pa.float64())),
    list[events.Sample]: pa.list_(_SAMPLE),
}


def schema(kind: type) -> pa.Schema:
    """The table of one event class: recorded_at, then its fields in declaration order."""
    hints = typing.get_type_hints(kind)
    columns = [pa.field("recorded_at", UTC_NS)]
    for name in kind.__struct_fields__:
        arrow = UTC_NS if name in TIMESTAMPS else _ARROW_TYPES[hints[name]]
        columns.append(pa.field(name, arrow))
    return pa.schema(columns)


def row(event: events.Event, recorded_at: int) -> dict[str, Any]:
    values = msgspec.structs.asdict(event)
    if isinstance(event, events.Heartbeat):
        values["metrics"] = [msgspec.structs.asdict(s) for s in event.metrics]
    values["recorded_at"] = recorded_at
    return values


class Tables:
    """One Parquet writer per kind, opened at its first event, written by row groups."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.counts: Counter = Counter()
        self._writers: dict[str, pq.ParquetWriter] = {}

    def add(self, kind: str, values: dict[str, Any]) -> None:
        rows = self.rows.setdefault(kind, [])
        rows.append(values)
        self.counts[kind] += 1
        if len(rows) >= ROWS_PER_GROUP:
            self._write(kind)

    def close(self) -> None:
        for kind in list(self.rows):
            self._write(kind)
        for writer in self._writers.values():
            writer.close()

    def _write(self, kind: str) -> None:
        rows, self.rows[kind] = self.rows[kind], []
        if not rows:
            return
        table_schema = schema(KINDS[kind])
        columns = {field.name: [r[field.name] for r in rows] for field in table_schema}
        arrays = [_array(columns[field.name], field.type) for field in table_schema]
        if kind not in self._writers:
            self._writers[kind] = pq.ParquetWriter(self.out / f"{kind}.parquet", table_schema)
        self._writers[kind].write_table(pa.Table.from_arrays(arrays, schema=table_schema))


def _array(values: list[Any], arrow: pa.DataType) -> pa.Array:
    if arrow == UTC_NS:
        return pa.array(values, pa.int64()).cast(UTC_NS)
    return pa.array(values, arrow)


def export(recording: Recording, out: Path) -> tuple[Counter, Counter]:
    """Write the tables; (events written by kind, events skipped by reason)."""
    tables, skipped = Tables(out), Counter()
    try:
        for record in recording.records():
            if record.type != MESSAGE:
                continue
            try:
                event = events.decode(record.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                skipped[_why_undecodable(record.data)] += 1
                continue
            if event.version > events.SCHEMA_VERSION:
                skipped[f"schema version {event.version} (newer than "
                        f"{events.SCHEMA_VERSION})"] += 1
                continue
            tables.add(event.__struct_config__.tag, row(event, record.recv_ns))
    finally:
        tables.close()
    return tables.counts, skipped


def _why_undecodable(payload: bytes) -> str:
    try:
        fields = msgspec.msgpack.decode(payload)
        version, kind = fields.get("v", 0), fields.get("k")
    except (msgspec.DecodeError, AttributeError):
        return "not a msgpack map"
    if isinstance(version, int) and version > events.SCHEMA_VERSION:
        return f"schema version {version} (newer than {events.SCHEMA_VERSION})"
    if kind not in KINDS:
        return f"unknown kind {kind!r}"
    return f"a {kind} that does not fit schema version {events.SCHEMA_VERSION}"
