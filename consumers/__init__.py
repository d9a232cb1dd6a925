"""Consumer processes: each subscribes to the bus by topic pattern. One package per process,
as handlers/ has one per provider, and the tail a module:

    books/      the order-book builder          python -m tickmesh.consumers.books
    monitor/    the heartbeat monitor           python -m tickmesh.consumers.monitor
    recorder/   the recorder, its format, gap fill, replay and export
                                                python -m tickmesh.consumers.recorder
    bars/       the bar builder                 python -m tickmesh.consumers.bars
    tail        the tail                        python -m tickmesh.consumers.tail

A process package runs its process from `__main__.py`, and names it by its `main` and
`Settings` (what runtime.check looks for), loaded on first use (`process_attributes`), so that
importing one of its pure modules alone loads no I/O library.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

PROCESS_ATTRIBUTES = ("main", "Settings")


def process_attributes(package: str, module: str) -> Callable[[str], Any]:
    """The module `__getattr__` of a process package: `main` and `Settings` of its process
    module `module`, imported when first asked for."""

    def attribute(name: str) -> Any:
        if name not in PROCESS_ATTRIBUTES:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return attribute
