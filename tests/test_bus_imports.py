"""bus/ imports nothing of ours: every module of tickmesh.bus, imported in a fresh interpreter,
loads no tickmesh module outside tickmesh.bus (the forwarder's process entry, which needs the
runtime, is tickmesh.runtime.forwarder)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

BUS_MODULES = sorted(f"tickmesh.bus.{path.stem}" for path in (REPO / "bus").glob("*.py")
                     if path.stem != "__init__")
PROBE = """
import importlib, json, sys
ours = lambda: {name for name in sys.modules if name.startswith("tickmesh.")
                and name != "tickmesh.bus" and not name.startswith("tickmesh.bus.")}
loaded = {}
for module in sys.argv[1:]:
    before = ours()
    importlib.import_module(module)
    loaded[module] = sorted(ours() - before)
print(json.dumps(loaded))
"""


def test_every_bus_module_loads_nothing_of_ours_outside_the_bus():
    assert "tickmesh.bus.subscriber" in BUS_MODULES and "tickmesh.bus.forwarder" in BUS_MODULES
    out = subprocess.run([sys.executable, "-c", PROBE, *BUS_MODULES], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out) == {module: [] for module in BUS_MODULES}
