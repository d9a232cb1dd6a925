"""`make bench`: every scenario, tickmesh and its peer (or its floor, or its own baseline) side by
side in the same run, each run --runs times (default 3): prints the table of medians (ratios
taken within each run) and writes bench/results.json (bench/report.py says what a record holds).

usage: python -m bench [--only NAME] [--frames N] [--events N] [--count N] [--seconds S]
                      [--trades N] [--messages N] [--updates N] [--runs K]
- alpaca: Alpaca trades through our handler and the bus, against alpaca-py and against the floor,
  a hand-written loop (bench.alpaca_throughput; --frames of 10 trades, default 100,000);
- binance: a Binance depth stream through our handler and order-book builder, against
  cryptofeed's L2 books (bench.binance_books; --events depthUpdates over 100 symbols, default
  100,000);
- kraken: Kraken book updates, each verified against Kraken's CRC32 checksum, through our
  handler and order-book builder, against cryptofeed's Kraken L2 books with its checksum
  validation on (bench.kraken_books; --updates over 50 pairs at depth 1000, default 50,000);
- recorder: the recorder's write rate and replay's at --speed max, against the handler
  benchmark's full rate (bench.recorder_throughput; --count trades, default 300,000);
- latency: feed send to consumer receive at 1k, 10k and 50k trades/s in frames of 1, 10 and
  20 ms ticks, against a bare pyzmq hop (bench.latency; --seconds a load, default 2);
- fanout: 1, 4 and 16 consumers of 10 of 1,000 symbols each: the handler's rate and their
  latency (bench.fanout; --seconds at 10k/s, then a blast of --frames / 2);
- slow: the handler's rate with a consumer sleeping 10 ms a message, and every process's RSS
  (bench.slow_consumer; a blast of --frames);
- symbols: the handler's CPU per trade at 10, 1,000 and 10,000 subscribed symbols
  (bench.symbols_scale; a blast of --frames / 2);
- lines: the publisher's and the consumer's CPU per event on two bus lines (A/B) against one
  line, and that none is lost (bench.two_lines; a blast of --trades over 100 symbols, default
  200,000);
- sdk: how fast the Subscriber SDK reads every event off the bus, against a hand-written pyzmq
  + msgspec loop, and each one's CPU per message (bench.sdk_vs_raw; a blast of --messages
  trades to each, default 400,000).
The whole default run takes ~7.5 minutes on 2 cores (plus, the first time, making the peers'
venv bench/.peer-venv: ~20 s to a few minutes). A smoke of everything in ~1 minute:
  --frames 2000 --events 5000 --count 20000 --seconds 0.5 --trades 20000 --messages 20000
  --updates 5000 --runs 1
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import (alpaca_throughput, binance_books, fanout, kraken_books, latency,
                   recorder_throughput, sdk_vs_raw, slow_consumer, symbols_scale, two_lines)
from bench.report import print_table, write_results
from tickmesh.consumers.books.snapshots import NoBuilder

RESULTS = Path(__file__).resolve().parent / "results.json"
RUNS = 3
SCENARIOS = ("alpaca", "binance", "kraken", "recorder", "latency", "fanout", "slow",
             "symbols", "lines", "sdk")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=SCENARIOS, help="one scenario only")
    parser.add_argument("--frames", type=int, default=alpaca_throughput.FRAMES,
                        help="Alpaca frames of 10 trades per run")
    parser.add_argument("--events", type=int, default=binance_books.EVENTS,
                        help="Binance depthUpdates per run (over 100 symbols)")
    parser.add_argument("--count", type=int, default=recorder_throughput.COUNT,
                        help="trades recorded and replayed")
    parser.add_argument("--seconds", type=float, default=latency.SECONDS,
                        help="seconds of each paced load (latency, fanout)")
    parser.add_argument("--trades", type=int, default=two_lines.TRADES,
                        help="trades published on one line and on two (over 100 symbols)")
    parser.add_argument("--messages", type=int, default=sdk_vs_raw.MESSAGES,
                        help="trades blasted to each consumer, the SDK's and the raw loop's")
    parser.add_argument("--updates", type=int, default=kraken_books.UPDATES,
                        help="Kraken book updates per run (over 50 pairs)")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each side")
    args = parser.parse_args()
    if args.frames < 2 or args.events < binance_books.SYMBOLS or args.runs < 1 \
            or args.seconds <= 0 or args.trades < 2 or args.messages < 2 \
            or args.updates < kraken_books.PAIRS:
        parser.error(f"--frames must be at least 2, --runs 1, --events {binance_books.SYMBOLS}, "
                     f"--updates {kraken_books.PAIRS}, --trades and --messages 2, --seconds "
                     "more than 0")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # clean up as on ^C
    started = time.monotonic()
    measures = {
        "alpaca": lambda: alpaca_throughput.measure(args.frames, args.runs),
        "binance": lambda: binance_books.measure(args.events, args.runs),
        "kraken": lambda: kraken_books.measure(args.updates, args.runs),
        "recorder": lambda: recorder_throughput.measure(args.count, args.runs),
        "latency": lambda: latency.measure(args.seconds, args.runs),
        "fanout": lambda: fanout.measure(args.seconds, args.frames // 2, args.runs),
        "slow": lambda: slow_consumer.measure(args.frames, args.runs),
        "symbols": lambda: symbols_scale.measure(args.frames // 2, args.runs),
        "lines": lambda: two_lines.measure(args.trades, args.runs),
        "sdk": lambda: sdk_vs_raw.measure(args.messages, args.runs),
    }
    rows = []
    for name in SCENARIOS:
        if args.only in (None, name):
            began = time.monotonic()
            rows += measures[name]()
            print(f"-- {name}: {time.monotonic() - began:.0f} s", flush=True)
    print_table(rows)
    print(f"{len(rows)} figures in {time.monotonic() - started:.0f} s")
    write_results(RESULTS, rows)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    except (RuntimeError, subprocess.SubprocessError, NoBuilder) as exc:
        sys.exit(f"bench failed: {exc}")
