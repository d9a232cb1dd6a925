"""The README's example consumer runs as written against a real bus, in under 20 lines."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

from bus import Publisher, Quote
from tests.conftest import REPO


def readme_consumer() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Writing a consumer", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_consumer_is_short_and_prints_exactly_aapl_mids(forwarder, spawn, run_dir):
    code = readme_consumer()
    assert len([line for line in code.splitlines() if line.strip()]) < 20
    script = run_dir / "consumer.py"
    script.write_text(re.sub(r'^ENDPOINT = .*$', f'ENDPOINT = "{forwarder.subscribe}"', code,
                             flags=re.M))
    proc = spawn([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    stop = threading.Event()

    def publish() -> None:
        pub = Publisher(forwarder.publish)
        while not stop.wait(0.005):
            for provider, symbol in (("alpaca", "AAPL"), ("polygon", "AAPL"), ("alpaca", "AAPLX")):
                pub.publish(Quote(provider=provider, symbol=symbol, ts_event=1, ts_recv=2,
                                  bid_price=100.0, bid_size=1.0, ask_price=100.5, ask_size=1.0))
        pub.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        lines = [proc.stdout.readline().split() for _ in range(10)]
    finally:
        stop.set()
        publisher.join()
    assert {line[0] for line in lines} == {"alpaca", "polygon"}
    assert all(line[1:] == ["AAPL", "mid", "100.2500"] for line in lines)
