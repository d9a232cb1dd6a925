"""write a recording as Parquet tables: PATH --to parquet --out DIR

One table per event kind (DIR/trade.parquet, DIR/quote.parquet, ...; the columns are
consumers.recorder.export's); each table written is said on stdout, what was skipped on
stderr (damage: file, byte offset, bytes and records, and the total; events that cannot be
decoded, by reason). Exit 2: PATH is missing or not a recording, or --out is a file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tickmesh.system import EXIT_USAGE, die


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a recording directory or segment file")
    parser.add_argument("--to", choices=["parquet"], default="parquet")
    parser.add_argument("--out", required=True, help="the directory to write the tables in")


def run(args: argparse.Namespace, _rest: list[str]) -> None:
    from tickmesh.consumers.recorder import export, recording  # loaded by this command alone

    try:
        source = recording.Recording(args.path)
    except recording.RecordingError as exc:
        die(str(exc), EXIT_USAGE)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        die(f"{out}: exists and is not a directory", EXIT_USAGE)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = export.export(source, out)
    for kind, count in sorted(written.items()):
        print(f"{out / (kind + '.parquet')}: {count} events")
    for problem in source.problems():
        print(f"export: {problem}", file=sys.stderr)
    for reason, count in sorted(skipped.items()):
        print(f"export: skipped {count} events: {reason}", file=sys.stderr)
