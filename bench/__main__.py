"""`make bench`: every scenario, tickmesh and its peer side by side in the same run; prints the
table and writes bench/results.json.

usage: python -m bench [--only alpaca|binance|recorder] [--frames N] [--events N] [--count N]
                      [--runs K]
- alpaca: Alpaca trades through our handler and the bus, against alpaca-py (bench.alpaca_throughput;
  --frames of 10 trades, default 100,000);
- binance: a Binance depth stream through our handler and order-book builder, against
  cryptofeed's L2 books (bench.binance_books; --events depthUpdates over 100 symbols, default
  100,000);
- recorder: the recorder's write rate and replay's at --speed max, against the handler
  benchmark's full rate (bench.recorder_throughput; --count trades, default 300,000; one run).
A quick smoke: --frames 2000 --events 5000 --count 20000 --runs 1.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from bench import alpaca_throughput, binance_books, recorder_throughput
from bench.report import print_table, write_results
from consumers.bookservice import NoBuilder

RESULTS = Path(__file__).resolve().parent / "results.json"
RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("alpaca", "binance", "recorder"),
                        help="one scenario only")
    parser.add_argument("--frames", type=int, default=alpaca_throughput.FRAMES,
                        help="Alpaca frames of 10 trades per run")
    parser.add_argument("--events", type=int, default=binance_books.EVENTS,
                        help="Binance depthUpdates per run (over 100 symbols)")
    parser.add_argument("--count", type=int, default=recorder_throughput.COUNT,
                        help="trades recorded and replayed")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each side")
    args = parser.parse_args()
    if args.frames < 1 or args.events < binance_books.SYMBOLS or args.runs < 1:
        parser.error(f"--frames and --runs must be at least 1, --events {binance_books.SYMBOLS}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # clean up as on ^C
    rows = []
    if args.only in (None, "alpaca"):
        rows += alpaca_throughput.measure(args.frames, args.runs)
    if args.only in (None, "binance"):
        rows += binance_books.measure(args.events, args.runs)
    if args.only in (None, "recorder"):
        rows += recorder_throughput.measure(args.count)
    print_table(rows)
    write_results(RESULTS, rows)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
    except (RuntimeError, subprocess.SubprocessError, NoBuilder) as exc:
        sys.exit(f"bench failed: {exc}")
