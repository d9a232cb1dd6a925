"""Which async HTTP client should tickmesh use for REST depth snapshots: aiohttp or httpx?

Starts a local simulator (a websockets 17 server answering plain HTTP GETs through its
``process_request`` hook) in a separate process, serving a Binance-shaped
``GET /api/v3/depth?symbol=BTCUSDT&limit=1000`` body (1000 bids + 1000 asks, ~50 KB). Then, for
each client under uvloop, measures sequential latency, throughput with 10 requests in flight,
the client's CPU seconds, and the library's import time in a fresh interpreter. Prints a table
and writes bench/http_clients.json.

Run: .venv/bin/python -m bench.http_clients
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import statistics
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine

import uvloop

WARMUP, REQUESTS, IN_FLIGHT, IMPORT_RUNS = 20, 300, 10, 5
DEPTH_PATH = "/api/v3/depth?symbol=BTCUSDT&limit=1000"
OUT = Path(__file__).with_suffix(".json")

Fetch = Callable[[str], Awaitable[bytes]]
Runner = Callable[[str], Coroutine[Any, Any, tuple[dict[str, float], str]]]


# --- simulator (runs in the child process) ---------------------------------------------------

def depth_body(levels: int = 1000, seed: int = 7) -> bytes:
    """A Binance-like depth snapshot: price/qty strings, best levels first."""
    rng = random.Random(seed)
    level = lambda px: [f"{px:.2f}", f"{rng.uniform(0.001, 5):.8f}"]  # noqa: E731
    bids = [level(65000.00 - i * 0.01) for i in range(levels)]
    asks = [level(65000.01 + i * 0.01) for i in range(levels)]
    return json.dumps({"lastUpdateId": 71234567890, "bids": bids, "asks": asks},
                      separators=(",", ":")).encode()


async def serve() -> None:
    from websockets.asyncio.server import ServerConnection, serve as ws_serve
    from websockets.http11 import Request, Response

    body, served = depth_body(), {"connections": 0}

    def process_request(conn: ServerConnection, request: Request) -> Response:
        served["connections"] += 1  # one ServerConnection per TCP connection
        if request.path.startswith("/stats"):
            return conn.respond(HTTPStatus.OK, json.dumps(served))
        response = conn.respond(HTTPStatus.OK, "")  # Date, Connection: close, ...
        del response.headers["Content-Length"], response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Length"] = str(len(body))
        response.body = body
        return response

    async with ws_serve(lambda ws: ws.close(), "127.0.0.1", 0,
                        process_request=process_request) as server:
        print(server.sockets[0].getsockname()[1], flush=True)  # port, for the parent
        await asyncio.Future()  # until terminated


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.http_clients", "--serve"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip().isdigit():
        stop(proc)
        raise RuntimeError("simulator did not start")
    return proc, int(line)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


# --- clients (run in this process) -----------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(fetch: Fetch, url: str) -> dict[str, float]:
    for _ in range(WARMUP):
        await fetch(url)
    latencies = []
    for _ in range(REQUESTS):
        t0 = time.perf_counter()
        await fetch(url)
        latencies.append((time.perf_counter() - t0) * 1e3)
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with sem:
            await fetch(url)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(REQUESTS)))
    return {"seq_median_ms": statistics.median(latencies), "seq_p99_ms": pct(latencies, 0.99),
            "conc_req_per_s": REQUESTS / (time.perf_counter() - t0)}


async def run_aiohttp(url: str) -> tuple[dict[str, float], str]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def fetch(u: str) -> bytes:
            async with session.get(u) as r:
                r.raise_for_status()
                return await r.read()

        async with session.get(url) as r:
            conn_header = r.headers.get("Connection", "")
        return await measure(fetch, url), conn_header


async def run_httpx(url: str) -> tuple[dict[str, float], str]:
    import httpx

    async with httpx.AsyncClient() as client:
        async def fetch(u: str) -> bytes:
            r = await client.get(u)
            r.raise_for_status()
            return r.content

        conn_header = (await client.get(url)).headers.get("Connection", "")
        return await measure(fetch, url), conn_header


def connections_served(base: str) -> int:
    import urllib.request
    with urllib.request.urlopen(base + "/stats") as r:
        return json.loads(r.read())["connections"] - 1  # minus this /stats request


def bench_client(name: str, runner: Runner, base: str) -> dict[str, float | str]:
    importlib.import_module(name)  # import cost is measured separately, not in cpu_s
    before, cpu0 = connections_served(base), time.process_time()
    stats, conn_header = uvloop.run(runner(base + DEPTH_PATH))
    stats["cpu_s"] = time.process_time() - cpu0
    requests = WARMUP + 2 * REQUESTS + 1
    stats["tcp_connections_per_request"] = (connections_served(base) - before - 1) / requests
    stats["import_ms"] = import_ms(name)
    return {**stats, "connection_header": conn_header}


def import_ms(module: str) -> float:
    """Best of IMPORT_RUNS cumulative `-X importtime` figures for `module` in a fresh python."""
    best = float("inf")
    for _ in range(IMPORT_RUNS):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                             capture_output=True, text=True, check=True).stderr
        line = next(ln for ln in reversed(err.splitlines()) if ln.split("|")[-1].strip() == module)
        best = min(best, int(line.split("|")[1]) / 1e3)
    return best


def print_table(results: dict[str, dict[str, float | str]]) -> None:
    cols = ["seq_median_ms", "seq_p99_ms", "conc_req_per_s", "cpu_s", "import_ms",
            "tcp_connections_per_request"]
    print(f"{'client':<8}" + "".join(f"{c:>16.16}" for c in cols[:-1]) + f"{'conns/req':>11}")
    for name, row in results.items():
        cells = "".join(f"{row[c]:>16.2f}" for c in cols[:-1])
        print(f"{name:<8}{cells}{row[cols[-1]]:>11.2f}")
    headers = {n: r["connection_header"] for n, r in results.items()}
    print(f"server 'Connection' response header: {headers}")


def main() -> None:
    proc, port = start_server()
    try:
        base = f"http://127.0.0.1:{port}"
        results = {name: bench_client(name, runner, base)
                   for name, runner in (("aiohttp", run_aiohttp), ("httpx", run_httpx))}
    finally:
        stop(proc)
    print(f"body: {len(depth_body())} bytes, {REQUESTS} requests per phase, warm-up {WARMUP}")
    print_table(results)
    OUT.write_text(json.dumps({"body_bytes": len(depth_body()), "results": results}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    uvloop.run(serve()) if sys.argv[1:] == ["--serve"] else main()
