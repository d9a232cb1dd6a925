"""Pure means pure: every sans-I/O module imports, in a fresh interpreter, without loading any
I/O library (counting what package __init__ files pull in)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

IO_LIBRARIES = ("zmq", "websockets", "asyncio", "uvloop", "structlog", "aiohttp", "ib_async")
PURE = sorted(
    {".".join(("tickmesh", *path.relative_to(REPO).with_suffix("").parts))
     for path in (REPO / "handlers").glob("*/protocol.py")}
    | {".".join(("tickmesh", *path.relative_to(REPO).with_suffix("").parts))
       for path in (REPO / "handlers").glob("*/wire.py")}
    | {"tickmesh.handlers.ib.depth", "tickmesh.handlers.common.market", "tickmesh.handlers.common.book",
       "tickmesh.handlers.common.symbols", "tickmesh.consumers.books.orderbook",
       "tickmesh.consumers.books.state", "tickmesh.consumers.bars.aggregate",
       "tickmesh.consumers.monitor.alerts", "tickmesh.consumers.monitor.checks",
       "tickmesh.consumers.recorder.recording",
       "tickmesh.bus.events",
       "tickmesh.bus.topics", "tickmesh.supervisor.health"}
)


def loaded_io(module: str) -> list[str]:
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            f"print(json.dumps([m for m in {IO_LIBRARIES!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_provider_has_a_protocol_module():
    providers = {p.name for p in (REPO / "handlers").iterdir()
                 if p.is_dir() and p.name not in ("common", "__pycache__")}
    assert providers and all(f"tickmesh.handlers.{p}.protocol" in PURE for p in providers)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_no_io_library(module):
    assert loaded_io(module) == []


def test_the_bus_package_exports_stay_lazy():
    code = ("import sys; import tickmesh.bus; from tickmesh.bus import Trade; assert 'zmq' not in sys.modules; "
            "from tickmesh.bus import Subscriber; assert 'zmq' in sys.modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert done.stdout.strip() == "ok", done.stderr
