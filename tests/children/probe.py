"""A handler for testing the client's side of the protocol contract (handlers.common.protocol)
end to end: each input the contract defines turns into a Trade whose symbol says which it was.

    start           replies "hello"; asks for a timer and an HTTP GET of settings.http_url
    receive         a frame "boom" raises (a protocol bug); any other frame is a Trade of it
    timer           a Trade "TIMER"
    http_response   a Trade "HTTP", price the status, size the body's length
    resubscribe     a Trade "RESUB-<symbol>", and the reply "resubscribe <symbol>"
"""

from __future__ import annotations

from dataclasses import dataclass

from tickmesh.bus.events import Trade
from tickmesh.handlers.common.client import ClientSettings, ReconnectingClient
from tickmesh.handlers.common.protocol import ClientProtocol, HttpRequest, HttpResponse, Output, Timer
from tickmesh.runtime import process


@dataclass(frozen=True, kw_only=True)
class Settings(ClientSettings):
    http_url: str


def trade(symbol: str, ts: int, price: float = 1.0, size: float = 1.0) -> Trade:
    return Trade(provider="probe", symbol=symbol, ts_event=ts, ts_recv=ts, price=price, size=size)


class ProbeProtocol(ClientProtocol):
    provider = "probe"

    def __init__(self, http_url: str, counters) -> None:
        super().__init__(counters)
        self.http_url = http_url

    def start(self) -> Output:
        return Output(replies=["hello"], effects=[
            Timer("tick", 0.05), HttpRequest("depth", self.http_url, (("symbol", "X"),))])

    def receive(self, frame: bytes, ts_recv: int) -> Output:
        if frame == b"boom":
            raise RuntimeError("a protocol bug")
        return Output([trade(frame.decode(), ts_recv)])

    def timer(self, key: str, ts: int) -> Output:
        return Output([trade("TIMER", ts)])

    def http_response(self, response: HttpResponse, ts: int) -> Output:
        return Output([trade("HTTP", ts, float(response.status), float(len(response.body)))])

    def resubscribe(self, symbol: str) -> Output:
        return Output([trade(f"RESUB-{symbol}", 0)], replies=[f"resubscribe {symbol}"])


async def _main(ctx: process.ProcessContext[Settings]) -> None:
    protocol = ProbeProtocol(ctx.settings.http_url, ctx.counts)
    await ReconnectingClient(ctx, protocol, ctx.settings).run()


def main() -> None:
    process.run(_main, Settings)


if __name__ == "__main__":
    main()
