"""The order-book builder's snapshot service: a late joiner asks for a whole book at once
(the Clone pattern's state request), then follows the bus.

Request, one JSON frame on a REQ socket to the builder's `snapshot_endpoint`:
    {"provider": "ib", "symbol": "AAPL", "depth": 10}          (depth 0 or absent: all levels)
Answer, one JSON frame:
    {"provider", "symbol", "state" (bus.events.BOOK_STATES), "message",
     "bids": [[price, size], ...] best first, "asks": [...] best first,
     "ts_event", "kind" and "seq" (the kind and bus sequence number of the last book event
     applied: book_snapshot or book_delta), "epoch", "generation", "checksum" (the venue's
     checksum the handler verified every update of this book with, bus.events.CHECKSUMS: e.g.
     "kraken-crc32"; "" if the venue sends none)}
or {"error": "...", "reason": "unknown_book" | "bad_request"}.
Only a "live" book is the provider's; any other state is the last book held, not the truth.

`BookService.serve` answers on an asyncio REP socket from the books in memory (no I/O while
answering, so it never holds up the event loop or the bus reading); `request_book` asks, and
`format_table` shows an answer on a terminal (`tickmesh book`).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from tickmesh.bus import sockets
from tickmesh.bus.request import NoAnswer, ask_json
from tickmesh.consumers.books.exact import exact
from tickmesh.consumers.books.state import BookMachine

UNKNOWN_BOOK = "unknown_book"
BAD_REQUEST = "bad_request"
MAX_REQUEST_BYTES = 4096

Books = Mapping[tuple[str, str], BookMachine]


class NoBuilder(NoAnswer):
    """Nobody (or something that is not a book builder) answered at the endpoint."""


def answer(raw: bytes, books: Books) -> dict[str, Any]:
    """The answer to one request (see the module's docstring)."""
    try:
        request = json.loads(raw) if len(raw) <= MAX_REQUEST_BYTES else None
        provider, symbol = request["provider"], request["symbol"]
        depth = request.get("depth") or None
        if not (isinstance(provider, str) and isinstance(symbol, str)
                and (depth is None or isinstance(depth, int) and depth > 0)):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        return {"error": "expected {\"provider\": str, \"symbol\": str, \"depth\": int > 0}",
                "reason": BAD_REQUEST}
    machine = books.get((provider, symbol))
    if machine is None:
        return {"error": f"no book of {symbol!r} from {provider!r}", "reason": UNKNOWN_BOOK}
    return describe(provider, symbol, machine, depth)


def describe(provider: str, symbol: str, machine: BookMachine,
             depth: int | None) -> dict[str, Any]:
    bids, asks = machine.book.top(depth)
    last = machine.last
    return {
        "provider": provider, "symbol": symbol, "state": machine.state,
        "message": machine.message, "bids": bids, "asks": asks,
        "ts_event": last.ts_event if last else 0,
        "kind": last.__struct_config__.tag if last else "",
        "seq": last.seq if last else 0, "epoch": machine.version[0],
        "generation": machine.version[1], "checksum": machine.checksum,
    }


class BookService:
    """Binds at once (raises zmq.ZMQError or OSError if it cannot)."""

    def __init__(self, endpoint: str, books: Books,
                 count: Callable[[str], None] = lambda outcome: None) -> None:
        self._books = books
        self._count = count
        problem = sockets.owner_problem(endpoint)
        if problem:
            raise OSError(f"cannot bind the snapshot service {problem}")
        self._socket = sockets.reply_server(endpoint)

    async def serve(self) -> None:
        """Answer requests until cancelled."""
        while True:
            frames = await self._socket.recv_multipart()
            reply = answer(frames[0], self._books) if len(frames) == 1 else {
                "error": "one frame expected", "reason": BAD_REQUEST}
            self._count(reply.get("reason", "ok"))
            await self._socket.send(json.dumps(reply).encode())

    def close(self) -> None:
        self._socket.close(linger=0)


def request_book(endpoint: str, provider: str, symbol: str, depth: int | None,
                 timeout: float) -> dict[str, Any]:
    """The builder's answer (a book, or an error with its reason); NoBuilder if none came."""
    request = json.dumps({"provider": provider, "symbol": symbol, "depth": depth or 0})
    reply = ask_json(endpoint, request.encode(), timeout, "book builder", NoBuilder)
    if not ("error" in reply or "bids" in reply):
        raise NoBuilder(f"unexpected answer from {endpoint}: {reply!r}")
    return reply


def format_table(book: dict[str, Any]) -> str:
    """A book as a terminal table: bids and asks side by side, best first, every price and size
    as received (consumers.books.exact: never rounded)."""
    lines = [f"{book['provider']} {book['symbol']}: {book['state']}"
             + (f" ({book['message']})" if book["message"] else "")
             + f", generation {book['generation']}, seq {book['seq']}"
             + (f", every update verified by the venue's checksum ({book['checksum']})"
                if book.get("checksum") else ""),
             f"{'bid size':>12} {'bid':>12}   {'ask':<12} ask size"]
    bids, asks = book["bids"], book["asks"]
    for i in range(max(len(bids), len(asks))):
        bid = f"{exact(bids[i][1]):>12} {exact(bids[i][0]):>12}" if i < len(bids) else " " * 25
        ask = f"{exact(asks[i][0]):<12} {exact(asks[i][1]):<12}" if i < len(asks) else ""
        lines.append(f"{bid}   {ask}".rstrip())
    return "\n".join(lines)
