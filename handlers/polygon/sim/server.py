"""A local simulator of Polygon's stocks WebSocket (wss://socket.polygon.io/stocks), on ws://.

It serves the real protocol (see handlers/polygon/protocol.py) at the path `/stocks`, the one the
official client builds: `connected` on open; `auth` answered by `auth_success`, or by
`auth_failed` and close 1008; no auth within `auth_timeout` seconds gives `auth_timeout` and close
1008; subscribe/unsubscribe with one `success` status per topic, `T.*` wildcards included. Data
is the shared market (handlers/common/market.py, through handlers/polygon/sim/market.py)
batched several messages per frame, or, with `replay`, a file of raw recorded frames, one per
line, sent as they are (filtered by the subscriptions) at
`rate` frames per second to each connection after its first subscribe. Lines that are not JSON
go out verbatim, which lets a test put garbage on a real socket.

The API key it accepts is in the environment variable that the setting `key_env` names (no
key_env: any key; a key_env whose variable is unset or empty is a settings error).
Connections are counted per API key: when one more than `max_connections` authenticates, the
oldest gets status `max_connections` and close 1008 (first in, first out, as Polygon does). A
client that lets its outbox fill up (handlers.common.simserver) is closed with 1008, "slow
consumer".

Test control, outside the real protocol: HTTP GET /control/<action> on the same port (stats,
drop, stall, quiet, error, burst), as handlers.common.simcontrol documents for every simulator.
Here an error's `code` is a status (auth_failed, auth_timeout, max_connections, error), and a
burst is trades of the connection's trade topics.

Run it standalone (`tickmesh sim polygon --port 8766`, i.e. `cli(argv)`) or supervised
(`python -m tickmesh.handlers.polygon.sim.server`, settings from TICKMESH_CHILD).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tickmesh.runtime.secrets import secret_from_env
from tickmesh.handlers.common import simcontrol, simserver, simulator
from tickmesh.runtime.badinput import count_bad_input
from tickmesh.runtime.settings import require
from tickmesh.handlers.common.simulator import SimulatorSettings
from tickmesh.handlers.polygon import wire
from tickmesh.handlers.polygon.sim.market import RandomFeed

PATHS = ("/stocks", "/stocks/")
TICK_SECONDS = 0.02
ERRORS = {  # status: (message, close reason: "" leaves the connection open)
    wire.AUTH_FAILED: ("authentication failed", "authentication failed"),
    wire.AUTH_TIMEOUT: ("No authentication request received.", "authentication timeout"),
    wire.MAX_CONNECTIONS: ("Maximum number of connections exceeded.", "max connections"),
    wire.ERROR: ("simulated error", ""),
}


@dataclass(frozen=True, kw_only=True)
class SimSettings(SimulatorSettings):
    port: int = 8766
    rate: float = 20.0
    """Random walk: messages per second per symbol. Replay: frames per second."""
    replay: str = ""
    key_env: str = ""
    """The environment variable holding the only API key accepted; empty: any key."""
    max_connections: int = 1
    auth_timeout: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.symbols) and all("|" not in s for s in self.symbols), "symbols",
                "symbols (without '|')", self.symbols)
        require(not self.replay or Path(self.replay).is_file(), "replay", "a file", self.replay)
        require(not self.key_env or bool(os.environ.get(self.key_env)), "key_env",
                "the name of an environment variable that is set", self.key_env)
        require(self.max_connections >= 1, "max_connections", "an integer >= 1",
                self.max_connections)
        require(self.auth_timeout > 0, "auth_timeout", "a number > 0", self.auth_timeout)


class _Client(simserver.Client):
    """One connection, and what it asked for."""

    def __init__(self, ws: ServerConnection, number: int, counters: Counter) -> None:
        super().__init__(ws, number, counters)
        self.key: str | None = None  # set once authenticated
        self.topics: set[str] = set()
        self.auth_timer: asyncio.TimerHandle | None = None
        self.replay: asyncio.Task | None = None

    def wants(self, message: Any) -> bool:
        """Data on a channel is filtered by subscription; anything else (statuses, and in a
        replay whatever was recorded) goes through."""
        ev = message.get("ev") if isinstance(message, dict) else None
        if ev not in wire.CHANNELS:
            return True
        return f"{ev}.{message.get('sym')}" in self.topics or f"{ev}.*" in self.topics

    @property
    def takes_data(self) -> bool:
        """Authenticated, and not quiet."""
        return self.key is not None and not self.quiet

    def subscriptions(self) -> list[str]:
        return sorted(self.topics)

    def close(self, code: int, reason: str) -> None:
        self.key = None
        self.topics.clear()
        self.end(simserver.Close(code, reason))

    def slow(self) -> None:
        self.close(wire.CLOSE_POLICY_VIOLATION, "slow consumer")


class Simulator(simserver.WebSocketSimulator[_Client]):
    url_path = "/stocks"

    def __init__(self, settings: SimSettings, counters: Counter) -> None:
        super().__init__(settings, counters, wire.PROVIDER)
        self.settings: SimSettings = settings
        self.key = secret_from_env(settings.key_env) if settings.key_env else ""
        self.feed = RandomFeed(list(settings.symbols), settings.rate, settings.seed or None)
        self.replay_lines = self._load_replay()
        self.last_trades: dict[str, dict[str, Any]] = {}  # by symbol: what a burst repeats
        self.bursts = 0

    def _load_replay(self) -> list[str]:
        if not self.settings.replay:
            return []
        text = Path(self.settings.replay).read_text(encoding="utf-8", errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    # --- connections -----------------------------------------------------------------------

    def connect(self, ws: ServerConnection, number: int) -> _Client:
        client = _Client(ws, number, self.counters)
        client.send(wire.encode_frame([wire.status(wire.CONNECTED, "Connected Successfully")]))
        client.auth_timer = client.later(self.settings.auth_timeout, self._auth_timed_out,
                                         client)
        return client

    def _status(self, client: _Client, state: str, message: str) -> None:
        client.send(wire.encode_frame([wire.status(state, message)]))

    def _error(self, client: _Client, status: str) -> None:
        """Status `status` of ERRORS, then close if the real server would."""
        message, close_reason = ERRORS[status]
        self.counters["sim_errors_sent", status] += 1
        self._status(client, status, message)
        if close_reason:
            client.close(wire.CLOSE_POLICY_VIOLATION, close_reason)

    def _auth_timed_out(self, client: _Client) -> None:
        self._error(client, wire.AUTH_TIMEOUT)

    # --- requests --------------------------------------------------------------------------

    def request(self, client: _Client, data: str | bytes) -> None:
        try:
            request = wire.decode_action(data)
        except wire.Malformed as exc:
            count_bad_input(self.counters, ("bad_input", "bad_request"), self.log, "bad request",
                            client=client.number, error=exc.reason[:200])
            self._status(client, wire.ERROR, f"invalid request: {exc.reason[:200]}")
            return
        if request.action == "auth":
            self._auth(client, request.params)
        elif request.action not in ("subscribe", "unsubscribe"):
            self.counters["bad_input", "bad_request"] += 1
            self._status(client, wire.ERROR, f"unknown action: {request.action[:50]}")
        elif client.key is None:
            self.counters["bad_input", "not_authorized"] += 1
            self._status(client, wire.ERROR, "not authorized")
        else:
            self._subscribe(client, request.action, request.params)

    def _auth(self, client: _Client, key: str) -> None:
        if client.auth_timer is not None:
            client.auth_timer.cancel()
        if self.key and key != self.key:
            self.log.warning("authentication failed", client=client.number)
            self._error(client, wire.AUTH_FAILED)
            return
        client.key = key
        self._status(client, wire.AUTH_SUCCESS, "authenticated")
        self.log.info("client authenticated", client=client.number)
        self._enforce_max_connections(key)

    def _enforce_max_connections(self, key: str) -> None:
        same_key = [c for c in self.clients if c.key == key]
        for oldest in same_key[: max(0, len(same_key) - self.settings.max_connections)]:
            self.log.info("max connections: closing the oldest", client=oldest.number)
            self._error(oldest, wire.MAX_CONNECTIONS)

    def _subscribe(self, client: _Client, action: str, params: str) -> None:
        done = "subscribed to" if action == "subscribe" else "unsubscribed to"
        for topic in filter(None, (t.strip() for t in params.split(","))):
            try:
                wire.split_topic(topic)
            except wire.Malformed:
                self.counters["bad_input", "bad_topic"] += 1
                self._status(client, wire.ERROR, f"invalid subscription: {topic[:50]}")
                continue
            (client.topics.add if action == "subscribe" else client.topics.discard)(topic)
            self._status(client, wire.SUCCESS, f"{done}: {topic}")
        if self.replay_lines and client.topics and client.replay is None:
            client.replay = client.spawn(self._replay(client))

    # --- data ------------------------------------------------------------------------------

    def _deliver(self, client: _Client, messages: list[Any], raw: str | None = None) -> None:
        """Send the messages this client subscribed to, in one frame (`raw` as it is if all)."""
        if not client.takes_data:
            return
        wanted = [m for m in messages if client.wants(m)]
        if wanted:
            client.send(raw if raw is not None and len(wanted) == len(messages) else
                        wire.encode_frame(wanted))

    async def run_market(self) -> None:
        """The random walk (a replay runs per connection)."""
        if self.replay_lines:
            await asyncio.Future()
        while True:
            messages = self.feed.advance(time.time_ns() // wire.MS)
            self.last_trades.update((m["sym"], m) for m in messages if m.get("ev") == "T")
            if messages:
                for client in list(self.clients):
                    self._deliver(client, messages)
            await asyncio.sleep(TICK_SECONDS)

    async def _replay(self, client: _Client) -> None:
        for line in self.replay_lines:
            try:
                self._deliver(client, wire.decode_frame(line), raw=line)
            except wire.Malformed:
                if client.takes_data:
                    client.send(line)  # garbage goes out as recorded
            await asyncio.sleep(1 / self.settings.rate)
        self.log.info("replay finished", client=client.number, frames=len(self.replay_lines))

    # --- test control ----------------------------------------------------------------------

    def route(self, connection: ServerConnection, request: Request) -> Response | None:
        """The stocks feed, or 404."""
        if request.path.partition("?")[0] in PATHS:
            return None
        return connection.respond(404, "Not Found: the stocks feed is at /stocks\n")

    def error(self, code: str) -> dict[str, Any]:
        if code not in ERRORS:
            raise simcontrol.ControlError(f"unknown status {code!r}; known: {sorted(ERRORS)}")
        for client in list(self.clients):
            self._error(client, code)
        return {"connections": len(self.clients)}

    def burst(self, count: int) -> dict[str, Any]:
        """`count` trades, in one frame, to each connection with trade topics of our symbols."""
        now = time.time_ns() // wire.MS
        sent = 0
        for client in self.clients:
            symbols = [s for s in self.settings.symbols if client.wants({"ev": "T", "sym": s})]
            if symbols and client.key is not None:  # even while quiet
                client.send(wire.encode_frame([self._burst_trade(symbols[i % len(symbols)], now)
                                               for i in range(count)]))
                sent += 1
        return {"connections": sent}

    def _burst_trade(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """The symbol's last trade again, with a new id and time (a plain one if none yet)."""
        self.bursts += 1
        last = self.last_trades.get(symbol, {"ev": "T", "sym": symbol, "x": 4, "z": 1,
                                             "p": 100.0, "s": 100, "q": 0})
        return {**last, "i": f"burst-{self.bursts}", "t": now_ms}

    def stats(self) -> dict[str, Any]:
        authenticated = [c for c in self.clients if c.key is not None]
        return {**super().stats(), "authenticated": len(authenticated),
                "subscriptions": [c.subscriptions() for c in authenticated]}


# --- entry points -------------------------------------------------------------------------

COMMAND = simulator.Command(
    "polygon", Simulator, SimSettings, __doc__.split("\n")[0],
    rate="messages per second per symbol (replay: frames per second)",
    replay="raw recorded frames, one per line",
    flags={"--key-env": {"metavar": "NAME", "help": "the environment variable holding the "
                         "only API key accepted (default: any key)"},
           "--max-connections": {"type": int}})
Settings, main, cli = SimSettings, COMMAND.main, COMMAND.cli

if __name__ == "__main__":
    main()
