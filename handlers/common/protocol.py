"""The interface between a provider's sans-I/O protocol and the reconnecting client.

A provider implements `ClientProtocol`: a `provider` name and two methods. The client
(`handlers.common.client.ReconnectingClient`) owns every socket and timer; the protocol only
turns frames into an `Output`:

    class MyProtocol(ClientProtocol):
        provider = "myprovider"                       # the source part of bus topics

        def start(self) -> Output:                    # a new connection is open
            self.stage = "welcome"                    # forget the previous connection
            return Output()                           # or Output(replies=[auth_frame])

        def receive(self, frame: bytes, ts_recv: int) -> Output:
            ...                                       # decode, normalize, advance the state

The contract:
- `receive` gets one complete WebSocket message as bytes (text frames arrive UTF-8 encoded) and
  `ts_recv`, the wall-clock ns at which it was read. It returns the normalized bus events, the
  replies to send (str goes out as a text frame, bytes as binary), the state changes, and
  whether the connection must be closed (e.g. after an auth failure).
- `receive` never raises on bad input: it counts it in `self.counters` ("malformed", ...) and
  puts a one-line description in `Output.problem`, which the client logs (rate-limited).
  It need not vet symbols: an event whose symbol cannot be in a topic ('|') is dropped and
  counted by the client when published.
- The protocol reports the states "connected", "authenticated", "subscribed" and "error" (with
  the provider's code and message); the client reports "connecting" and "disconnected" itself
  and publishes every change as a `bus.events.Status`. "subscribed" resets the reconnect backoff.
- `headers()` gives extra HTTP headers for the upgrade request (e.g. a content type).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import ClassVar, NamedTuple, Sequence

from bus.events import Event


class Change(NamedTuple):
    """A connection state change to publish as a Status (state is one of STATUS_STATES)."""

    state: str
    code: int = 0
    message: str = ""


class Output(NamedTuple):
    """What the protocol made of one frame (or of a new connection)."""

    events: Sequence[Event] = ()
    replies: Sequence[bytes | str] = ()
    changes: Sequence[Change] = ()
    problem: str = ""
    close: bool = False


class ClientProtocol(ABC):
    """A provider's client-side protocol state machine: frames in, `Output` out, no I/O."""

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
