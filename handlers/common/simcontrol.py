"""The one test control of every simulator: plain HTTP GET on the simulator's own port.

Tests (and people) drive a running simulator, outside the provider's protocol, with

    GET /control/<action>?<params>          e.g. curl 'http://127.0.0.1:8765/control/stall?seconds=5'

on the port it serves its clients on (Alpaca, Polygon, Coinbase, Binance, Kraken: next to the
WebSocket upgrade; IB: the TWS API port, where a connection whose first bytes are `GET ` is
taken for HTTP, answered and closed). The answer is a JSON object: `{"ok": true, "action": "drop", "connections": 2}` (what
the action reached) with status 200 once it is applied; `{"ok": false, "error": "..."}` with 400
for a bad, missing or unknown parameter (or, on IB's port, a request that is not an HTTP GET),
404 for an unknown action (the answer lists the known ones in "actions"). Every
applied action but stats counts in the metric sim_controls{action}; refused requests count in
bad_input{reason="control"}. Actions apply to the connections open at that moment; those that
come later are not affected.

Every simulator:
    stats                 its counters (runtime.metrics.flat), "connections" (how many are
                          open) and "subscriptions" (per connection, in the provider's terms)
    drop                  abort every client connection at once: no close frame, no goodbye
    stall?seconds=N       a slow network: for N seconds every open connection's socket is not
                          read (pings go unanswered, requests wait) and nothing is sent to it;
                          what the simulator sends it meanwhile (data, answers, a burst, a
                          close) is held back and goes out, in order, when the stall ends:
                          late, never lost (one held back longer than its outbox holds is
                          disconnected as a slow client: handlers.common.simserver). Losing
                          data is `drop` (and a provider's `gap`)
    quiet?seconds=N       no data for N seconds, but the connections still answer (pings,
                          requests): a quiet market (Alpaca, Polygon: to the connections open
                          now; Coinbase, Binance, Kraken, IB: the markets stand still, so that
                          a book can be compared with the simulator's)
    error?code=C          send every connection the provider's own error C, and close those
                          connections the real server would close after it:
                          Alpaca: an error message {"T":"error","code":C,"msg":...} for the codes
                            of handlers.alpaca.wire.ERRORS; 402, 404, 407 and 409 close;
                          Polygon: C is a status: auth_failed, auth_timeout, max_connections
                            (each then closes with 1008) or error (stays open);
                          Coinbase: slow_consume, slow_read, too_big (each then closes with
                            1008) or failed_subscribe (stays open);
                          Binance: its error codes 0 to 3 (none closes);
                          Kraken: maintenance or online (a systemStatus), malformed (an error
                            event); none closes;
                          IB: TWS error C with its text (1100, 1101, 1102, 2103..2158, 326, 200,
                            317, 321): 200, 317 and 321 go to every subscription's request id
                            (317 to depth ones), the others to id -1; 326 closes (only the
                            message: connectivity below changes IB's state)
    burst?count=N         at least N extra data messages, at once, to every subscribed connection,
                          even a quiet one (a stalled one when the stall ends)
                          (Alpaca: from its market, as subscribed; Polygon, Binance: trades on
                          the connection's trade topics or streams; Coinbase: N trades over
                          the products, to their matches subscribers; Kraken: N trades over
                          the pairs, to their trade subscribers, with their book updates; IB: N
                          market steps or more, until each subscribed connection got N
                          messages)
IB also:
    connectivity?online=0|1   IB's side of TWS: 0 sends 1100 and the markets stop; 1 sends 1102
                          (restored, data maintained) and they move again
    bad-depth             one depth update past the last row of every depth subscription, as a
                          faulty TWS would send
    oversize?mb=N         a hostile TWS: to every connection a message length of 2 GB, then N MB
                          (0 to 256) of the message it promises
    garbage?count=N       N well-framed messages that are not the TWS API, to every connection

A server restart is a process restart: kill the simulator, start it again on the same port.
Tests use tests/simcontrol.py: `control(port, "stall", seconds=5) -> dict`.

This module is the shared part: the vocabulary and its parameters, parsing a request target,
applying an action, and the JSON answer; handlers.common.simserver implements drop and stall
for every simulator, each simulator the other actions.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from tickmesh.runtime.logs import log

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Response

PREFIX = "/control/"
HTTP_GET = b"GET "
MAX_REQUEST_BYTES = 8192
"""Of a request's head, read on a raw socket (IB) before it is refused."""
MAX_SECONDS = 3600.0
MAX_COUNT = 1_000_000
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class ControlError(ValueError):
    """A control request that cannot be applied: its message goes back with status 400."""


class UnknownAction(ControlError):
    """No such action: status 404."""


# --- parameters ----------------------------------------------------------------------------

def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_SECONDS:
        raise ControlError(f"seconds must be a number > 0 and <= {MAX_SECONDS:g}, not {text!r}")
    return value


def count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_COUNT:
        raise ControlError(f"count must be an integer from 1 to {MAX_COUNT}, not {text!r}")
    return int(text)


def code(text: str) -> str:
    if not text or len(text) > 64:
        raise ControlError(f"code must be 1 to 64 characters, not {text[:64]!r}")
    return text


def int_code(text: str, known: Mapping[int, object]) -> int:
    """An integer error code among `known` (for the providers whose codes are numbers)."""
    if not text.lstrip("-").isdigit() or int(text) not in known:
        raise ControlError(f"unknown error code {text[:64]!r}; known: {sorted(known)}")
    return int(text)


def flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ControlError(f"expected 0 or 1, not {text[:64]!r}")
    return text == "1"


# --- the vocabulary ------------------------------------------------------------------------

Parser = Callable[[str], Any]


class Action(NamedTuple):
    """What a simulator does for an action: `run(**params)` returns what to answer besides ok,
    and raises ControlError for a request it cannot apply."""

    run: Callable[..., dict[str, Any]]
    params: Mapping[str, Parser] = {}


def actions(*, stats: Callable[[], dict[str, Any]], drop: Callable[[], dict[str, Any]],
            stall: Callable[[float], dict[str, Any]], quiet: Callable[[float], dict[str, Any]],
            error: Callable[[str], dict[str, Any]], burst: Callable[[int], dict[str, Any]],
            extra: Mapping[str, Action] | None = None) -> dict[str, Action]:
    """Every simulator's actions, with their parameters, plus the provider's extra ones."""
    return {
        "stats": Action(stats),
        "drop": Action(drop),
        "stall": Action(stall, {"seconds": seconds}),
        "quiet": Action(quiet, {"seconds": seconds}),
        "error": Action(error, {"code": code}),
        "burst": Action(burst, {"count": count}),
        **(extra or {}),
    }


# --- requests and answers ------------------------------------------------------------------

class Answer(NamedTuple):
    status: int
    body: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.body) + "\n"

    def http(self) -> bytes:
        """The whole HTTP/1.1 response, for a server without an HTTP library (IB)."""
        body = self.json().encode()
        head = (f"HTTP/1.1 {self.status} {REASONS.get(self.status, '')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n")
        return head.encode() + body


def is_control(target: str) -> bool:
    """The request target (path and query) is one for the test control."""
    return urlsplit(target).path.startswith(PREFIX)


def refused(status: int, message: str, **extra: Any) -> Answer:
    return Answer(status, {"ok": False, "error": message, **extra})


def answer(target: str, actions: Mapping[str, Action], counts: Counter) -> Answer:
    """Apply the action `target` names (`/control/<action>?<params>`) and say how it went."""
    try:
        name, params = _parse(target, actions)
    except UnknownAction as exc:
        counts["bad_input", "control"] += 1
        return refused(404, str(exc), actions=sorted(actions))
    except ControlError as exc:
        counts["bad_input", "control"] += 1
        return refused(400, str(exc))
    try:
        result = actions[name].run(**params)
    except ControlError as exc:
        counts["bad_input", "control"] += 1
        return refused(400, str(exc))
    except Exception as exc:  # a simulator bug: say so rather than hang up
        log().exception("control action failed", action=name)
        return refused(500, f"{name} failed: {exc!r}"[:200])
    if name != "stats":
        counts["sim_controls", name] += 1
        log().info("control applied", action=name, **params)
    return Answer(200, {"ok": True, "action": name, **result})


def _parse(target: str, actions: Mapping[str, Action]) -> tuple[str, dict[str, Any]]:
    """(action, parsed params), or ControlError (UnknownAction for an unknown action)."""
    parts = urlsplit(target)
    name = parts.path.removeprefix(PREFIX)
    if not parts.path.startswith(PREFIX) or name not in actions:
        raise UnknownAction(f"unknown action {name[:64]!r}")
    wanted = actions[name].params
    given = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({key[:64] for key, _ in given} - set(wanted))
    if unknown:
        raise ControlError(f"{name} takes {sorted(wanted) or 'no parameters'}, not {unknown}")
    values = dict(given)
    if len(values) != len(given):
        raise ControlError(f"{name}: a parameter given twice")
    missing = sorted(set(wanted) - set(values))
    if missing:
        raise ControlError(f"{name} needs {missing}")
    return name, {key: parse(values[key]) for key, parse in wanted.items()}


def request_target(head: bytes) -> str:
    """The target of an HTTP GET request's head (`GET /control/stats HTTP/1.1\\r\\n...`);
    ControlError if it is not one."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or not parts[2].startswith(b"HTTP/1."):
        raise ControlError(f"not an HTTP GET request: {line[:80]!r}")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise ControlError(f"not an ASCII request target: {parts[1][:80]!r}") from None


def http_answer(head: bytes, actions: Mapping[str, Action], counts: Counter) -> Answer:
    """The answer to a raw HTTP request head (IB's port): 400 unless a GET of /control/..."""
    try:
        target = request_target(head)
    except ControlError as exc:
        counts["bad_input", "control"] += 1
        return refused(400, str(exc))
    return answer(target, actions, counts)


def respond(connection: "ServerConnection", result: Answer) -> "Response":
    """The answer as a websockets HTTP response (the WebSocket simulators' process_request)."""
    response = connection.respond(result.status, result.json())
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
