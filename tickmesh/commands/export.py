"""write a recording as Parquet tables: PATH --to parquet --out DIR"""

from __future__ import annotations

import argparse

from tickmesh.system import dispatch

PASS_THROUGH = True


def arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(_args: argparse.Namespace, rest: list[str]) -> None:
    dispatch("tickmesh.consumers.recorder.export", rest, "the export is not installed")
