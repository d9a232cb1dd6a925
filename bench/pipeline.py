"""What the latency, fan-out, slow-consumer and symbol-scale scenarios share: the forwarder,
bench.feed with its plans, our Alpaca handler on one of them, the probes (bench.probe), the
process's figures (/proc: CPU time, RSS) and the JSON line a measuring process ends with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.counter import cpu_seconds
from bench.processes import Processes, free_port, listening, wait_for

CREDENTIALS = {"APCA_API_KEY_ID": "bench-key", "APCA_API_SECRET_KEY": "bench-secret"}
__all__ = ["cpu_seconds"]


def start_forwarder(procs: Processes) -> subprocess.Popen:
    forwarder = procs.child("tickmesh.runtime.forwarder", "forwarder", {})
    bound = [Path(end[len("ipc://"):]) for end in (procs.bus.publish, procs.bus.subscribe)]
    wait_for(lambda: all(path.exists() for path in bound), "the forwarder to bind")
    return forwarder


def start_feed(procs: Processes, plans: dict[str, dict]) -> tuple[subprocess.Popen, int]:
    """bench.feed serving `plans` (bench.feed's format); (the process, its port)."""
    path = procs.run_dir / "plans.json"
    path.write_text(json.dumps(plans))
    port = free_port()
    feed = procs.start("feed", [sys.executable, "-m", "bench.feed", str(port), str(path)])
    wait_for(lambda: listening(port), "bench.feed to listen", timeout=120)
    return feed, port


def start_handler(procs: Processes, port: int, plan: str, symbols: list[str] | None = None,
                  name: str = "alpaca") -> subprocess.Popen:
    """Our Alpaca handler on bench.feed's `plan` (all symbols, or those given), trades only,
    without pings (bench.feed writes to the socket directly) or the stale-data watchdog."""
    settings = {"url": f"ws://127.0.0.1:{port}/v2/iex?plan={plan}", "symbols": symbols or ["*"],
                "channels": ["trades"], "ping_interval": 0, "stale_after": 0}
    return procs.child("tickmesh.handlers.alpaca.handler", name, settings, env=CREDENTIALS)


def start_probe(procs: Processes, name: str, endpoint: str, *args: str) -> subprocess.Popen:
    """A bench.probe process, once it says it has subscribed."""
    probe = procs.start(name, [sys.executable, "-m", "bench.probe", endpoint, *args], talk=True)
    if probe.stdout.readline().strip() != "ready":
        raise RuntimeError(f"bench.probe {name} did not start")
    return probe


def last_json(proc: subprocess.Popen, timeout: float) -> dict:
    """The JSON line a measuring process prints last, once it has ended."""
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(map(str, proc.args))[:200]} exited with {proc.returncode}")
    return json.loads(lines[-1])


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as {field: value}; {} if the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def rss_mb(pid: int) -> float:
    """The resident set of a process, in MB (VmRSS); 0.0 if it is gone."""
    return int(proc_status(pid).get("VmRSS", "0 kB").split()[0]) / 1024


def switches(pid: int) -> list[int]:
    """A process's context switches so far, [voluntary, involuntary]; [0, 0] if it is gone."""
    status = proc_status(pid)
    return [int(status.get(f"{kind}_ctxt_switches", 0)) for kind in ("voluntary", "nonvoluntary")]


class StatusWatch:
    """The handler's Status events on the bus: make one before starting the handler, then
    `wait("subscribed")`."""

    def __init__(self, procs: Processes) -> None:
        from tickmesh.bus import Subscriber

        self._sub = Subscriber(procs.bus.subscribe, ["status.alpaca.*"])

    def wait(self, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self._sub.recv(timeout=left)
            if event is not None and event.state == state:
                return
        raise RuntimeError(f"the handler did not say {state!r} within {timeout:g} s")

    def close(self) -> None:
        self._sub.close()
