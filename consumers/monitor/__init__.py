"""The heartbeat monitor: alerts on stopped heartbeats, silent feeds, stale symbols, reconnect
storms and gap rates, on each feed's market hours; has the supervisor restart a hung process
(`python -m tickmesh.consumers.monitor`).

    monitor     the process: its settings, the bus in, alerts out, restart requests
    checks      what it watches and when to alarm, as a state machine (pure)
    alerts      an alert's hysteresis: when to raise and clear it (pure)
    hours       each market's phase at an instant: closed, pre, regular, post

`main` and `Settings` are the monitor's, loaded on first use (consumers.process_attributes).
"""

from tickmesh.consumers import process_attributes

__getattr__ = process_attributes(__name__, f"{__name__}.monitor")
