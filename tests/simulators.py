"""Starting a provider's simulator for a test: as the supervisor would run it, on a free port
(or the one given), returning once it serves, and failing at once if it exits instead."""

from __future__ import annotations

import socket
import subprocess
from typing import Any, Callable

from tests.conftest import free_port
from tests.waiting import wait_until


def listening(port: int) -> bool:
    """Something accepts TCP connections on loopback `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start(spawn_child, module: str, name: str, port: int | None, settings: dict[str, Any],
          ready: Callable[[int], bool] = listening) -> tuple[int, subprocess.Popen]:
    """The simulator `module` as the child `name`: (its port, its process) once `ready(port)`."""
    port = port or free_port()
    proc = spawn_child(module, name, {"port": port, **settings})
    wait_until(lambda: ready(port) or proc.poll() is not None, timeout=15,
               what=f"the simulator {name} to listen")
    assert proc.poll() is None, f"the simulator {name} exited at start"
    return port, proc
