"""Test helpers for IB: start the fake TWS as a supervised child on a free port, drive its test
control (tests.simcontrol) or freeze it, hold a client id on it with a bare socket, and wait on
an ib_async client."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ib_async import IB

from tickmesh.handlers.ib.sim import wire
from tests import simcontrol, simulators


@dataclass
class IbSim:
    port: int
    proc: subprocess.Popen

    def control(self, action: str, **params: Any) -> dict[str, Any]:
        return simcontrol.control(self.port, action, **params)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP for the block, then SIGCONT: a hung TWS that reads and sends nothing while
        the kernel keeps its sockets up (and accepts new connections into the backlog)."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)


def start_ib_sim(spawn_child, port: int | None = None, name: str = "ib-sim", **settings) -> IbSim:
    """The simulator as the supervisor would run it; returns once it accepts connections."""
    return IbSim(*simulators.start(spawn_child, "tickmesh.handlers.ib.sim.server", name, port, settings))


def hold_client_id(port: int, client_id: int) -> socket.socket:
    """A bare API connection that has started with `client_id` (close it to let go)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(wire.API_PREFIX + wire.frame(b"v157..178"))
    sock.sendall(wire.encode(wire.Out.START_API, 2, client_id, ""))
    reader, seen = wire.FrameReader(), []
    while wire.In.NEXT_VALID_ID not in seen:
        data = sock.recv(65536)
        if not data:
            sock.close()
            raise ConnectionError(f"the simulator closed the connection (client id {client_id})")
        seen += [int(wire.split_fields(payload)[0]) for payload in reader.feed(data)]
    return sock


async def until(ib: IB, condition: Callable[[], object], what: str,
                timeout: float = 10.0) -> None:
    """Wait, batch of TWS data by batch, until `condition()` holds."""
    async def wait() -> None:
        while not condition():
            await ib.updateEvent

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
