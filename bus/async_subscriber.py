"""AsyncSubscriber: the Subscriber for asyncio (bus.subscriber tells what a reader is told,
and in which order). Messages are read from a blocking shadow of the socket once the asyncio
socket says they are there: one wake-up for a burst. A fill request at the head of the stream
is carried out in a thread, shielded: a read that gives up or is cancelled meanwhile loses and
reorders nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import zmq
import zmq.asyncio
import zmq.backend

from tickmesh.bus.messages import Item
from tickmesh.bus.stream import Stream

BATCH = 256  # messages an async reader takes at most at one wake-up (`batches`)


class AsyncSubscriber(Stream):
    """The Subscriber for asyncio: `event = await sub.recv()`, `async for event in sub`, or
    `async for batch in sub.batches()`."""

    _context_class = zmq.asyncio.Context

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # a blocking view of each libzmq socket (closed with it: never close it apart)
        self._shadows = [zmq.Socket.shadow(sock.underlying) for sock in self._sockets]
        self._shadow_recvs = [zmq.backend.Socket.recv.__get__(shadow) for shadow in self._shadows]
        self._poller = zmq.asyncio.Poller()  # with two bus lines: waits for either
        for sock in self._sockets:
            self._poller.register(sock, zmq.POLLIN)
        self._filling: asyncio.Future | None = None

    async def recv(self, timeout: float | None = None) -> Item | None:
        """The next wanted event, or None if none came within `timeout` seconds (a deadline for
        the whole call). Cancelling it loses nothing and reorders nothing."""
        batch = await self._batch(1, None if timeout is None else time.monotonic() + timeout)
        return batch[0] if batch else None

    async def recv_batch(self, limit: int) -> list[Item]:
        """The next wanted events, at most `limit`: those already arrived, up to the next
        notice; waits for one, unless a notice was told meanwhile (then the batch may be empty:
        a reader handles what it was told, e.g. a publisher gone silent, at once)."""
        return await self._batch(limit, None, until_told=True)

    async def batches(self, limit: int = BATCH) -> AsyncIterator[list[Item]]:
        """`recv_batch(limit)` for ever; after each batch is handled, the loop's other tasks
        run (a ready socket never suspends `recv_batch`: a busy bus would starve them)."""
        while True:
            yield await self.recv_batch(limit)
            await asyncio.sleep(0)

    async def _batch(self, limit: int, deadline: float | None,
                     until_told: bool = False) -> list[Item]:
        told = self._told
        while True:
            batch = self._collect(self._shadow_recvs, limit)
            if batch or (until_told and self._told != told):
                return batch
            if self._pending:
                if not await self._fill_head(deadline):
                    return []
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return []
            if len(self._sockets) == 1:
                await self._socket.poll(self._wait_ms(deadline), zmq.POLLIN)
            else:
                await self._poller.poll(self._wait_ms(deadline))

    async def _fill_head(self, deadline: float | None) -> bool:
        """Carry out the fill request at the head of `_pending` (in a thread: it waits on the
        recorder); False if the deadline came first. Shielded: a caller that gives up or is
        cancelled leaves it running, and the next call waits for the same fill, so nothing
        behind it is delivered first."""
        request = self._pending[0]
        if self._filling is None:
            self._filling = asyncio.ensure_future(asyncio.to_thread(self._fetch, request.gap))
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            fill = await asyncio.wait_for(asyncio.shield(self._filling), wait)
        except TimeoutError:
            return False
        self._filling = None
        self._pending.popleft()
        self._apply_fill(request.gap, fill)
        return True

    def __aiter__(self) -> "AsyncSubscriber":
        return self

    async def __anext__(self) -> Item:
        return (await self._batch(1, None))[0]
