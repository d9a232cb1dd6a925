"""The contract between a provider's sans-I/O protocol and the client that runs it.

A provider implements `ClientProtocol`. The client (handlers.common.client.ReconnectingClient
for WebSocket providers) owns every socket, timer and HTTP connection; the protocol only turns
what happened into an `Output`, and never does I/O itself:

    class MyProtocol(ClientProtocol):
        provider = "myprovider"                     # the source part of bus topics

        def start(self) -> Output:                  # a new connection is open
            self.stage = "welcome"                  # forget the previous connection
            return Output()                         # or Output(replies=[auth_frame])

        def receive(self, frame: bytes, ts_recv: int) -> Output:
            ...                                     # decode, normalize, advance the state

What goes in, each call returning an Output:
- `start()`: a connection is open. Reset per-connection state; say what to send first.
- `receive(frame, ts_recv)`: one complete WebSocket message as bytes (text frames arrive UTF-8
  encoded), read at `ts_recv` (wall-clock ns).
- `timer(key, ts)`: a `Timer(key, delay)` this protocol asked for came due.
- `http_response(response, ts)`: the answer to an `HttpRequest` (status 0 and `error` set when
  no answer came: refused, timed out, or too large), with its headers (names lower-cased).
- `resubscribe(symbol)`: the client is resubscribing one symbol, as a `Resubscribe` asked;
  return the frames that do it (default: a problem, "cannot resubscribe one symbol").
- `control(request, ts)`: a `bus.events.Control` addressed to this provider arrived over the
  bus (topic `control.<provider>.<SYMBOL>`). The default answers action "resync" for a symbol
  with `Resubscribe(symbol)`, and counts anything else as bad input.

What comes out (`Output`, all optional):
- `events`: normalized bus events, published as they are.
- `replies`: frames to send (str goes out as a text frame, bytes as binary).
- `changes`: state changes. The protocol reports "connected", "authenticated", "subscribed"
  and "error" (with the provider's code and message), and for one symbol (`symbol` set)
  "resyncing" when its book is being rebuilt (the next BookSnapshot ends it) or an "error";
  the client reports "connecting" and "disconnected" itself, and publishes each as a
  `bus.events.Status`.
- `effects`: requests for the client to act on, each answered through the calls above:
  `Timer(key, delay)` (one pending timer per key: a new one replaces it),
  `HttpRequest(key, url, params)` (a GET; its answer comes back to `http_response`),
  `Resubscribe(symbol, reason)` (the client resubscribes that symbol after a per-symbol,
  capped, jittered backoff that grows while resyncs keep coming, and calls `resubscribe`).
  Timers, requests in flight and pending resubscribes all end with the connection.
- `problem`: one line about bad input, which the client logs (rate-limited).
- `close`: end this connection (e.g. after an auth failure); the client reconnects.

Rules:
- Bad input never raises: count it in `self.counters` (keys are runtime.metrics names, such as
  `counters["bad_input", "malformed"]`) and describe it in `Output.problem`. An event whose
  symbol cannot be in a topic ('|') is dropped and counted by the client.
- Should a call raise anyway (a bug, or input nobody foresaw), the client catches it, counts it
  (`protocol_faults`), logs it rate-limited, skips that one input and goes on: a protocol bug
  never kills the process or the connection.
- `headers()` gives extra HTTP headers for the WebSocket upgrade request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import ClassVar, NamedTuple, Sequence, Union

from tickmesh.bus.events import Control, Event


class Change(NamedTuple):
    """A state change to publish as a Status (state is one of STATUS_STATES): the
    connection's, or with `symbol` one symbol's (e.g. "resyncing", or an error for it)."""

    state: str
    code: int = 0
    message: str = ""
    symbol: str = ""


class Timer(NamedTuple):
    """Call `timer(key, ts)` in `delay` seconds (replacing a pending timer with that key)."""

    key: str
    delay: float


class HttpRequest(NamedTuple):
    """GET `url` with `params`; the answer goes to `http_response` with the same key."""

    key: str
    url: str
    params: tuple[tuple[str, str], ...] = ()


class HttpResponse(NamedTuple):
    key: str
    status: int  # 0: no answer (see error)
    body: bytes = b""
    error: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # (lower-cased name, value), as they came


class Resubscribe(NamedTuple):
    """Resubscribe one symbol (a resync), after the symbol's backoff."""

    symbol: str
    reason: str = ""


Effect = Union[Timer, HttpRequest, Resubscribe]


class Output(NamedTuple):
    """What the protocol made of one input."""

    events: Sequence[Event] = ()
    replies: Sequence[bytes | str] = ()
    changes: Sequence[Change] = ()
    problem: str = ""
    close: bool = False
    effects: Sequence[Effect] = ()


RESYNC = "resync"


class ClientProtocol(ABC):
    """A provider's client-side protocol state machine: inputs in, `Output` out, no I/O."""

    provider: ClassVar[str]

    def __init__(self, counters: Counter | None = None) -> None:
        self.counters: Counter = counters if counters is not None else Counter()

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers for the WebSocket upgrade request."""
        return {}

    @abstractmethod
    def start(self) -> Output:
        """A new connection is open: reset the per-connection state, say what to send first."""

    @abstractmethod
    def receive(self, frame: bytes, ts_recv: int) -> Output:
        """One message from the server, read at `ts_recv` (ns since the epoch)."""

    def timer(self, key: str, ts: int) -> Output:
        return Output()

    def http_response(self, response: HttpResponse, ts: int) -> Output:
        self.counters["bad_input", "unexpected"] += 1
        return Output(problem=f"an HTTP response nobody asked for: {response.key!r}")

    def resubscribe(self, symbol: str) -> Output:
        self.counters["bad_input", "unexpected"] += 1
        return Output(problem=f"{self.provider} cannot resubscribe one symbol ({symbol})")

    def control(self, request: Control, ts: int) -> Output:
        if request.action == RESYNC and request.symbol:
            return Output(effects=[Resubscribe(request.symbol, f"asked by {request.sender}")])
        self.counters["bad_input", "control"] += 1
        return Output(problem=f"unknown control request {request.action!r} "
                              f"for {request.symbol!r} from {request.sender!r}")
