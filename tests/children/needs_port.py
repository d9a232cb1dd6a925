"""A child that connects to settings.port once, at start: it runs on if something listens
there, and exits with code 3 if nothing does (as a handler started too early would fail)."""

import signal
import socket
import sys
from dataclasses import dataclass

from tickmesh.runtime.spec import child_spec


@dataclass(frozen=True)
class Settings:
    port: int


def main() -> None:
    port = child_spec().settings["port"]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        sys.exit(3)
    signal.pause()


if __name__ == "__main__":
    main()
