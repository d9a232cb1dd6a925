"""`python -m tickmesh.consumers.monitor`: the heartbeat monitor (`monitor.main`)."""

from __future__ import annotations

from tickmesh.consumers.monitor.monitor import main

if __name__ == "__main__":
    main()
