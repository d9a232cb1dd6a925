"""Binance spot market streams, client side, sans-I/O: frames, timers and REST answers in;
trades, quotes and in-sync L2 books out.

`BinanceProtocol` is the client's state machine for handlers.common's reconnecting client:
- On a new connection it reports "connected" (Binance sends no greeting) and SUBSCRIBEs its
  streams in chunks of `streams_per_subscribe`, one message every `subscribe_interval` seconds
  (a Timer paces them: Binance takes 5 messages a second, pings and pongs included), and
  reports "subscribed" once every chunk is acknowledged ({"result": null, "id": N}).
- Each symbol's book is kept in step by handlers.binance.sync (Binance's documented rules;
  its docstring has them). Its depth events are buffered from the SUBSCRIBE on; once the
  subscription is acknowledged a REST snapshot is queued (handlers.binance.pacing: a weight
  budget per minute, a few in flight), fetched with an HttpRequest effect, and the book it
  makes with the buffered events is published as a BookSnapshot (the symbol's next
  generation), then one BookDelta per depth event.
- Binance's REST limits hold for the whole handler (the pacer's rules): every answer's
  X-MBX-USED-WEIGHT-1M counts against the budget; a 429 or a 418 (an IP ban) holds every
  request until its Retry-After has passed, across reconnects too. The refused symbol waits
  first in line, its buffer kept (no resync). Each new hold is a Status "error" (code 429 or
  418) naming it and when it ends, counted in binance_rest_backoffs{status}, said again when
  a new connection is subscribed during it; its end is a Status "subscribed" again.
- A gap, a crossed book, a level that does not parse (NaN, negative, not a number), a
  snapshot that fails or does not decode: that symbol alone is resynced: Status "resyncing"
  for it, its book dropped, and a Resubscribe effect, which the client carries out after the
  symbol's backoff (growing while resyncs keep coming) by calling `resubscribe(symbol)`:
  buffering again and a new snapshot. Every other symbol streams on meanwhile.
- Trades become Trade (side from `m`: buyer is maker -> the aggressor sold), bookTicker a
  Quote. serverShutdown closes the connection (the client reconnects). Control "resync"
  (over the bus) is the default: a Resubscribe of that symbol.

Symbols are normalized (BTC-USDT, handlers.common.symbols) on the bus; the venue's BTCUSDT is
each event's native_symbol. Bad input is counted in bad_input{reason} (malformed_<what>,
bad_level, crossed_book, unknown_symbol, unexpected) and described in Output.problem.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable
from urllib.parse import urlsplit

from tickmesh.bus.events import BookDelta, BookSnapshot, Event, Quote, Trade
from tickmesh.handlers.binance import wire
from tickmesh.handlers.binance.pacing import NS, SnapshotPacer
from tickmesh.handlers.binance.sync import Action, DepthSync, Phase, Step, Update
from tickmesh.handlers.common.protocol import (
    Change, ClientProtocol, Effect, HttpRequest, HttpResponse, Output, Resubscribe, Timer,
)
from tickmesh.handlers.common.symbols import joined

SUBSCRIBE_TIMER = "subscribe"
PUMP_TIMER = "snapshots"
BACKOFF_TIMER = "rest_backoff"
DEPTH_KEY = "depth:"
DEPTH_PATH = "/api/v3/depth"


@dataclass(frozen=True)
class Config:
    """What the protocol needs of the handler's settings."""

    symbols: tuple[str, ...]  # normalized: BTC-USDT
    channels: tuple[str, ...] = ("depth", "trade", "bookTicker")
    rest_url: str = "https://api.binance.com"
    depth_limit: int = 1000
    weight_per_minute: int = wire.WEIGHT_PER_MINUTE
    snapshots_in_flight: int = 4
    streams_per_subscribe: int = 200
    subscribe_interval: float = 0.25

    def streams(self) -> list[str]:
        return [wire.stream_name(joined(symbol), channel)
                for symbol in self.symbols for channel in self.channels]


def merge(outputs: Iterable[Output]) -> Output:
    """One Output of several, in order."""
    events: list[Event] = []
    replies: list[bytes | str] = []
    changes: list[Change] = []
    effects: list[Effect] = []
    problems: list[str] = []
    close = False
    for out in outputs:
        events.extend(out.events)
        replies.extend(out.replies)
        changes.extend(out.changes)
        effects.extend(out.effects)
        problems.append(out.problem)
        close |= out.close
    return Output(events, replies, changes, "; ".join(filter(None, problems)), close, effects)


class BinanceProtocol(ClientProtocol):
    provider = wire.PROVIDER

    def __init__(self, config: Config, counters: Counter | None = None) -> None:
        super().__init__(counters)
        self.config = config
        self.symbols = {joined(symbol): symbol for symbol in config.symbols}  # native -> ours
        self.natives = {symbol: native for native, symbol in self.symbols.items()}
        self.depth = "depth" in config.channels
        self.depth_streams = {wire.stream_name(native, "depth") for native in self.symbols} \
            if self.depth else set()
        self.syncs = {symbol: DepthSync() for symbol in config.symbols} if self.depth else {}
        self.generations: Counter = Counter()  # snapshots published per symbol
        self.pacer = SnapshotPacer(wire.depth_weight(config.depth_limit),
                                   config.weight_per_minute, config.snapshots_in_flight)
        self.rest_host = urlsplit(config.rest_url).hostname or config.rest_url
        self.chunks: list[list[str]] = []
        self.unanswered: dict[int, list[str]] = {}  # SUBSCRIBE id -> its streams
        self.next_id = 0
        self.subscribed = False  # every chunk of this connection acknowledged

    # --- the connection --------------------------------------------------------------------

    def start(self) -> Output:
        for sync in self.syncs.values():
            sync.stop()
        self.pacer.reset()
        self.unanswered.clear()
        self.subscribed = False
        size = self.config.streams_per_subscribe
        streams = self.config.streams()
        self.chunks = [streams[i:i + size] for i in range(0, len(streams), size)]
        return merge([Output(changes=[Change("connected")]), self._subscribe_next()])

    def _subscribe_next(self) -> Output:
        """SUBSCRIBE the next chunk of streams (their books start buffering now)."""
        if not self.chunks:
            return Output()
        chunk = self.chunks.pop(0)
        self.next_id += 1
        self.unanswered[self.next_id] = chunk
        for symbol in self._depth_symbols(chunk):
            self.syncs[symbol].begin()
        more = [Timer(SUBSCRIBE_TIMER, self.config.subscribe_interval)] if self.chunks else []
        return Output(replies=[wire.subscribe_request(chunk, self.next_id)], effects=more)

    def _depth_symbols(self, streams: list[str]) -> list[str]:
        split = (wire.split_stream(stream) for stream in streams)
        return [self.symbols[native] for native, channel in split if channel == "depth"]

    def timer(self, key: str, ts: int) -> Output:
        if key == SUBSCRIBE_TIMER:
            return self._subscribe_next()
        if key == PUMP_TIMER:
            return self._pump(ts)
        if key == BACKOFF_TIMER:
            return self._backoff_over(ts)
        return Output()

    # --- frames ----------------------------------------------------------------------------

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        depth = wire.decode_depth_frame(frame)
        if depth is not None and depth.stream in self.depth_streams:
            try:
                return self._depth(depth.data, ts_recv)
            except wire.Malformed as exc:
                return self._malformed(exc, ts_recv)
        try:
            message = wire.decode_message(frame)
            if isinstance(message, wire.Data):
                return self._data(message, ts_recv)
        except wire.Malformed as exc:
            return self._malformed(exc, ts_recv)
        if isinstance(message, wire.Result):
            return self._acknowledged(message, ts_recv)
        if isinstance(message, wire.Error):
            text = f"{wire.ERROR_CODES.get(message.code, 'error')}: {message.msg}"[:300]
            return Output(changes=[Change("error", message.code, text)])
        return Output(close=True)  # serverShutdown: the client reconnects

    def _acknowledged(self, result: wire.Result, ts: int) -> Output:
        chunk = self.unanswered.pop(result.id, None) if isinstance(result.id, int) else None
        if chunk is None:
            self.counters["bad_input", "unexpected"] += 1
            return Output(problem=f"an answer to no request of ours: id {result.id!r:.40}")
        for symbol in self._depth_symbols(chunk):
            self.pacer.add(symbol)
        if self.unanswered or self.chunks:
            return self._pump(ts)
        self.subscribed = True
        subscribed = Output(changes=[
            Change("subscribed", message=f"{len(self.config.streams())} streams")])
        held = self._held(ts) if self.pacer.held(ts) else Output()
        return merge([subscribed, held, self._pump(ts)])

    def _data(self, message: wire.Data, ts: int) -> Output:
        channel = wire.channel_of(message)
        if channel == "depth":
            return self._depth(wire.decode_depth(message.payload), ts)
        if channel == "trade":
            return self._trade(wire.decode_trade(message.payload), ts)
        return self._ticker(wire.decode_ticker(message.payload), ts)

    def _symbol(self, native: str, what: str) -> str:
        symbol = self.symbols.get(native)
        if symbol is None:
            raise wire.Malformed("symbol", f"{what} of a symbol not subscribed: {native[:40]!r}")
        return symbol

    def _trade(self, m: wire.WireTrade, ts: int) -> Output:
        symbol = self._symbol(m.s, "a trade")
        trade = Trade(provider=self.provider, symbol=symbol, native_symbol=m.s,
                      ts_event=m.T * wire.MS, ts_recv=ts,
                      price=wire.parse_price(m.p, "trade", m.s),
                      size=wire.parse_price(m.q, "trade", m.s),
                      trade_id=str(m.t), side="s" if m.m else "b")
        return Output(events=[trade])

    def _ticker(self, m: wire.BookTicker, ts: int) -> Output:
        symbol = self._symbol(m.s, "a bookTicker")
        quote = Quote(provider=self.provider, symbol=symbol, native_symbol=m.s, ts_event=ts,
                      ts_recv=ts, bid_price=wire.parse_price(m.b, "ticker", m.s),
                      bid_size=wire.parse_price(m.B, "ticker", m.s),
                      ask_price=wire.parse_price(m.a, "ticker", m.s),
                      ask_size=wire.parse_price(m.A, "ticker", m.s))
        return Output(events=[quote])

    def _depth(self, m: wire.Depth, ts: int) -> Output:
        symbol = self._symbol(m.s, "depth")
        sync = self.syncs.get(symbol)
        if sync is None:
            return Output()  # depth we did not ask for
        update = Update(m.U, m.u, m.b, m.a)
        return self._act(symbol, sync.on_update(update), m.E * wire.MS or ts, ts)

    def _malformed(self, exc: wire.Malformed, ts: int) -> Output:
        """Count it; and if it was depth of one of our symbols, resync that symbol."""
        reason = "unknown_symbol" if exc.kind == "symbol" else (
            "bad_level" if exc.kind == "level" else f"malformed_{exc.kind}")
        self.counters["bad_input", reason] += 1
        problem = f"{str(exc)[:300]}"
        symbol = self.symbols.get(exc.symbol)
        if exc.kind in ("depth", "level", "snapshot") and symbol in self.syncs:
            return merge([Output(problem=problem),
                          self._resync(symbol, "bad_input", str(exc)[:200])])
        return Output(problem=problem)

    # --- books -----------------------------------------------------------------------------

    def _act(self, symbol: str, step: Step, ts_event: int, ts: int) -> Output:
        """Carry out what a symbol's sync asked for."""
        native = self.natives[symbol]
        if step.action is Action.DELTA:
            return Output(events=[BookDelta(
                provider=self.provider, symbol=symbol, native_symbol=native, ts_event=ts_event,
                ts_recv=ts, bids=step.bids, asks=step.asks, generation=self.generations[symbol])])
        if step.action is Action.SNAPSHOT:
            self.generations[symbol] += 1
            self.counters["binance_snapshots", "applied"] += 1
            return Output(events=[BookSnapshot(
                provider=self.provider, symbol=symbol, native_symbol=native, ts_event=ts_event,
                ts_recv=ts, bids=step.bids, asks=step.asks,
                generation=self.generations[symbol])])
        if step.action is Action.REFETCH:
            self.counters["binance_snapshots", "stale"] += 1
            self.pacer.add(symbol)
            return self._pump(ts)
        if step.action is Action.RESYNC:
            resync = self._resync(symbol, step.kind, step.reason)
            if step.kind != "crossed_book":
                return resync
            self.counters["bad_input", "crossed_book"] += 1
            return merge([Output(problem=f"{native}: {step.reason}"), resync])
        return Output()

    def _resync(self, symbol: str, kind: str, reason: str) -> Output:
        """Drop the symbol's book; the client backs off, then calls `resubscribe`."""
        self.syncs[symbol].stop()
        self.pacer.remove(symbol)
        self.counters["resyncs", kind] += 1
        return Output(changes=[Change("resyncing", message=reason, symbol=symbol)],
                      effects=[Resubscribe(symbol, reason)])

    def resubscribe(self, symbol: str) -> Output:
        """After a resync's backoff (or a control request): buffer again, fetch a snapshot."""
        sync = self.syncs.get(symbol)
        if sync is None:
            if symbol in self.symbols.values():
                return Output()  # no depth channel: nothing to resync
            self.counters["bad_input", "unknown_symbol"] += 1
            return Output(problem=f"cannot resync {symbol[:40]!r}: not one of our symbols")
        changes = []
        if sync.phase is Phase.LIVE:  # asked over the bus: say the book is being rebuilt
            self.counters["resyncs", "requested"] += 1
            changes.append(Change("resyncing", message="resync requested", symbol=symbol))
        sync.begin()
        self.pacer.remove(symbol)  # a request in flight was for the buffer just dropped
        self.pacer.add(symbol)
        return Output(changes=changes, effects=[Timer(PUMP_TIMER, 0.0)])

    # --- snapshots -------------------------------------------------------------------------

    def _pump(self, ts: int) -> Output:
        """Send the snapshot requests the pacing allows now; a timer for the next one."""
        effects: list[Effect] = [
            HttpRequest(DEPTH_KEY + symbol, self.config.rest_url.rstrip("/") + DEPTH_PATH,
                        (("symbol", joined(symbol)), ("limit", str(self.config.depth_limit))))
            for symbol in self.pacer.take(ts)]
        self.counters["binance_snapshots", "requested"] += len(effects)
        wait = self.pacer.wait(ts)
        if wait is not None:
            effects.append(Timer(PUMP_TIMER, wait))
        self.counters["binance_snapshot_queue"] = len(self.pacer.waiting)
        self.counters["binance_rest_weight"] = self.pacer.used(ts)
        return Output(effects=effects)

    def http_response(self, response: HttpResponse, ts: int) -> Output:
        symbol = response.key.removeprefix(DEPTH_KEY)
        sync = self.syncs.get(symbol)
        if not response.key.startswith(DEPTH_KEY) or sync is None:
            return super().http_response(response, ts)
        current = self.pacer.done(symbol)  # False: superseded, its answer is of no use
        limits = self._limits(response, ts)
        if response.status in wire.REFUSALS:
            self.counters["binance_snapshots", "refused"] += 1
            if current:
                self.pacer.retry(symbol)
            return merge([limits, self._pump(ts)])
        snapshot = self._snapshot(symbol, sync, response, ts) if current else Output()
        return merge([limits, snapshot, self._pump(ts)])

    def _snapshot(self, symbol: str, sync: DepthSync, response: HttpResponse,
                  ts: int) -> Output:
        if sync.phase is not Phase.BUFFERING:
            return Output()  # resynced or stopped meanwhile: a late answer
        native = joined(symbol)
        if response.status != 200:
            self.counters["binance_snapshots", "failed"] += 1
            detail = response.error or response.body[:200].decode("utf-8", "replace")
            return self._resync(symbol, "snapshot_failed",
                                f"snapshot failed: {response.status} {detail}")
        try:
            snapshot = wire.decode_snapshot(response.body, native)
            bids = wire.parse_levels(snapshot.bids, native)
            asks = wire.parse_levels(snapshot.asks, native)
        except wire.Malformed as exc:
            return self._malformed(exc, ts)
        return self._act(symbol, sync.on_snapshot(snapshot.lastUpdateId, bids, asks), ts, ts)

    # --- REST limits -----------------------------------------------------------------------

    def _limits(self, response: HttpResponse, ts: int) -> Output:
        """What an answer says of Binance's limits: the weight used, a 429 or a 418."""
        headers = dict(response.headers)
        used, bad_weight = self._header(headers, wire.USED_WEIGHT)
        if used is not None:
            self.pacer.report(used, ts)
        if response.status not in wire.REFUSALS:
            return Output(problem=bad_weight)
        seconds, bad_wait = self._header(headers, wire.RETRY_AFTER)
        problem = "; ".join(filter(None, (bad_weight, bad_wait)))
        return merge([Output(problem=problem), self._hold(response.status, seconds, ts)])

    def _header(self, headers: dict[str, str], name: str) -> tuple[int | None, str]:
        """A header's whole number (None if it is absent or malformed), and the problem."""
        if name not in headers:
            return None, ""
        try:
            return wire.header_count(headers[name], name), ""
        except wire.Malformed as exc:
            self.counters["bad_input", "malformed_header"] += 1
            return None, str(exc)[:200]

    def _hold(self, status: int, seconds: float | None, ts: int) -> Output:
        """A 429 or a 418: no request for `seconds` (if it did not say, Binance's default)."""
        wait = wire.DEFAULT_RETRY_AFTER[status] if seconds is None else seconds
        if not self.pacer.hold(status, min(wait, wire.MAX_RETRY_AFTER), ts):
            return Output()  # the hold running already says it
        self.counters["binance_rest_backoffs", str(status)] += 1
        return self._held(ts)

    def _held(self, ts: int) -> Output:
        """Say that REST requests are held, why and until when; a timer for its end."""
        status, until = self.pacer.held_status, self.pacer.held_until
        end = datetime.fromtimestamp(math.ceil(until / NS), timezone.utc)
        message = (f"Binance REST {status} ({wire.REFUSALS[status]}): no request to "
                   f"{self.rest_host} until {end:%Y-%m-%dT%H:%M:%SZ} "
                   f"({math.ceil((until - ts) / NS)} s)")
        return Output(changes=[Change("error", status, message)],
                      effects=[Timer(BACKOFF_TIMER, (until - ts) / NS)])

    def _backoff_over(self, ts: int) -> Output:
        """The hold's timer came due: REST requests go again (unless it was extended)."""
        if self.pacer.held(ts):
            return Output(effects=[Timer(BACKOFF_TIMER, (self.pacer.held_until - ts) / NS)])
        status = self.pacer.held_status
        changes = [Change("subscribed", message=f"REST requests resume after the {status}")]
        return merge([Output(changes=changes if self.subscribed else []), self._pump(ts)])
