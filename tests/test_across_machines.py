"""Across machines (issue 19), the acceptance test: four hosts, each a network namespace of its
own on one switch (tests/netns.py; as root, skipped otherwise), each running `tickmesh run` on a
config of its own, on one bus with two lines and CURVE on:

    fa  10.201.0.1   line A's forwarder               ([bus] forwarder = "A", no children)
    fb  10.201.0.2   line B's forwarder               ([bus] forwarder = "B", no children)
    h1  10.201.0.3   the Coinbase simulator and its handler   (forwarder = "none")
    c   10.201.0.4   the book builder, the recorder and a counting consumer  (forwarder = "none")

The forwarder hosts hold the server's key pair and the public key of every host; the others
their own key pair and the server's public key. At a steady load (>= 5,000 of the handler's
events a second), fa's forwarder is SIGKILLed (its supervisor restarts it), then fb's cable is
pulled (its port on the switch down) until h1 and c say line B is unreachable (3 s without their
own heartbeat back: the bus sockets' heartbeats drop every connection to fb then too), and a
second more, then plugged back:

- the counting consumer (tests/children/counter.py) received every message exactly once: per
  topic and publisher epoch, the sequence numbers are contiguous from its first to its last,
  none repeated, and its subscriber told no gap (but for what fb's own processes, its
  supervisor and its forwarder, sent while fb was cut off: their heartbeats could reach no
  line, and are lost, never repeated);
- both lines delivered first at times, and the second copies were dropped;
- the builder's books stayed live throughout (it published no other book_status on the bus)
  and, once the market stands still, equal the simulator's true books;
- the recording has no gap (no OUTAGE record, no GAP record but for fb's own heartbeats) and
  holds, contiguous, every message of the handler the consumer received.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from tickmesh.bus.messages import stamp
from tickmesh.consumers.books.snapshots import NoBuilder, request_book
from tickmesh.consumers.recorder.recording import GAP, OUTAGE, Recording
from tickmesh.supervisor.control import NoSupervisor, request_status
from tests.conftest import REPO
from tests.netns import Hosts
from tests.supervised import TICKMESH, child_toml
from tests.test_books_e2e import as_book
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

ADDRESSES = {"fa": "10.201.0.1", "fb": "10.201.0.2", "h1": "10.201.0.3", "c": "10.201.0.4"}
FORWARDERS = {"fa": "A", "fb": "B"}
PRODUCTS = ["BTC-USD", "ETH-USD", "SOL-USD", "LTC-USD", "LINK-USD", "AVAX-USD", "ADA-USD",
            "DOT-USD", "ATOM-USD", "UNI-USD"]
RATE = 700  # trades a second per product (and 20 book changes): ~7,200 events/s in all
MIN_RATE = 5_000  # the handler's events a second, at least, through the faults
SIM_PORT = 18767  # on h1's own loopback
CUT_OFF = ("heartbeat.fb.|", "heartbeat.forwarder-b.|")
"""The topics of fb's own publishers: what they send while fb's cable is out reaches nobody."""
HANDLER_TOPICS = ("trade.coinbase.", "book_delta.coinbase.", "book_snapshot.coinbase.")


# --- the hosts' files -----------------------------------------------------------------------

@dataclass
class Host:
    """One machine's directory: its keys, its config and its run dir."""

    role: str
    home: Path

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def config(self) -> Path:
        return self.home / "tickmesh.toml"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    def status(self) -> dict[str, Any] | None:
        try:
            return request_status(f"ipc://{self.run_dir}/control", timeout=1.0)
        except NoSupervisor:
            return None


def make_keys(bench: Path) -> Path:
    """`tickmesh keys` for the server and for each host, all at once, into bench/."""
    made = [subprocess.Popen([*TICKMESH, "keys", str(bench), "--name", name], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for name in ("server", *ADDRESSES)]
    for process in made:
        assert process.wait(timeout=30) == 0, process.stderr.read()
    return bench


def hand_out_keys(bench: Path, host: Host) -> None:
    """What each host holds: a forwarder host the server's pair, its own pair and every host's
    public key (authorized); any other host its own pair and the server's public key."""
    host.keys.mkdir(mode=0o700, parents=True)
    names = [f"{host.role}.key", f"{host.role}.key_secret", "server.key"]
    if host.role in FORWARDERS:
        names.append("server.key_secret")
        (host.keys / "authorized").mkdir()
        for role in ADDRESSES:
            shutil.copy(bench / f"{role}.key", host.keys / "authorized")
    for name in names:
        shutil.copy2(bench / name, host.keys / name)


def bus_toml(role: str) -> str:
    a, b = ADDRESSES["fa"], ADDRESSES["fb"]
    forwarder = FORWARDERS.get(role, "none")
    server = "server.key_secret" if forwarder != "none" else "server.key"
    return (f'[bus]\npublish = "tcp://{a}:7001"\nsubscribe = "tcp://{a}:7002"\n'
            f'publish_b = "tcp://{b}:7001"\nsubscribe_b = "tcp://{b}:7002"\n'
            f'forwarder = "{forwarder}"\ncurve = true\n'
            f'server_key_file = "keys/{server}"\nclient_key_file = "keys/{role}.key_secret"\n'
            + ('authorized_keys = "keys/authorized"\n' if forwarder != "none" else "")
            + f'\n[supervisor]\nname = "{role}"\n\n')


def children_toml(host: Host) -> str:
    if host.role == "h1":
        return "\n".join([
            child_toml("coinbase-sim", "tickmesh.handlers.coinbase.sim.server",
                       {"host": "127.0.0.1", "port": SIM_PORT, "rate": RATE,
                        "symbols": PRODUCTS, "seed": 7}),
            child_toml("coinbase", "tickmesh.handlers.coinbase.handler",
                       {"url": f"ws://127.0.0.1:{SIM_PORT}", "symbols": PRODUCTS,
                        "backoff_min": 0.05, "backoff_max": 0.5}, after=["coinbase-sim"])])
    if host.role == "c":
        return "\n".join([
            child_toml("books", "tickmesh.consumers.books",
                       {"snapshot_endpoint": f"ipc://{host.run_dir}/books",
                        "providers": ["coinbase"]}),
            child_toml("recorder", "tickmesh.consumers.recorder",
                       {"directory": str(host.run_dir / "recordings")}),
            child_toml("counter", "tests.children.counter",
                       {"report": str(host.home / "counter.json")})])
    return ""


def set_up(base: Path) -> dict[str, Host]:
    bench = make_keys(base / "bench")
    hosts = {role: Host(role, base / role) for role in ADDRESSES}
    for host in hosts.values():
        hand_out_keys(bench, host)
        host.config.write_text(bus_toml(host.role) + children_toml(host))
    shutil.rmtree(bench)  # no secret key stays anywhere but with its holder
    return hosts


# --- running them ---------------------------------------------------------------------------

def run(machines: Hosts, host: Host) -> subprocess.Popen:
    """`tickmesh run` on the host, in its namespace, with its own run dir."""
    with (host.home / "supervisor.log").open("w") as log:
        return machines.start(host.role, [*TICKMESH, "run", str(host.config)], cwd=REPO,
                              env={"TICKMESH_RUN_DIR": str(host.run_dir)},
                              stdout=log, stderr=subprocess.STDOUT)


def all_running(host: Host) -> dict[str, Any] | None:
    status = host.status()
    if status and all(c["state"] == "running" for c in status["children"].values()):
        return status
    return None


def lines_up(host: Host) -> bool:
    status = host.status()
    return bool(status) and [(line["line"], line["state"]) for line in status["bus"]["lines"]] \
        == [("A", "up"), ("B", "up")]


def counter(c: Host) -> dict[str, Any]:
    """The counting consumer's last report ({} before its first)."""
    try:
        return json.loads((c.home / "counter.json").read_text())
    except FileNotFoundError:
        return {}


def handler_events(report: dict[str, Any]) -> int:
    """The handler's events (trades and book changes) the consumer received."""
    return sum(count for key, (_, _, count) in report.get("topics", {}).items()
               if key.startswith(HANDLER_TOPICS))


def grows(measure: Callable[[], int], what: str, timeout: float = 15) -> None:
    before = measure()
    wait_until(lambda: measure() > before, timeout=timeout, what=what, interval=0.1)


def books(c: Host, depth: int = 0) -> dict[str, dict[str, Any]]:
    endpoint = f"ipc://{c.run_dir}/books"
    try:
        return {p: request_book(endpoint, "coinbase", p, depth, timeout=5) for p in PRODUCTS}
    except NoBuilder:
        return {}


def every_book_live(c: Host) -> bool:
    answers = books(c, depth=1)
    return bool(answers) and all(a.get("state") == "live" for a in answers.values())


def true_books(machines: Hosts) -> dict[str, tuple[dict[float, float], dict[float, float]]]:
    """The simulator's books now, asked on h1 (its test control is on h1's own loopback)."""
    truth = {}
    for product in PRODUCTS:
        answer = json.loads(machines.get(
            "h1", f"http://127.0.0.1:{SIM_PORT}/control/book?product={product}&depth=1000"))
        truth[product] = ({float(p): float(s) for p, s in answer["bids"]},
                          {float(p): float(s) for p, s in answer["asks"]})
    return truth


# --- the faults -----------------------------------------------------------------------------

def forwarder_pid(fa: Host) -> int:
    """The pid of fa's forwarder, as `tickmesh status --json` on fa tells it."""
    done = subprocess.run([*TICKMESH, "status", "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "TICKMESH_RUN_DIR":
                                                      str(fa.run_dir)})
    assert done.returncode == 0, done.stderr
    forwarder = json.loads(done.stdout)["children"]["forwarder"]
    assert forwarder["state"] == "running", forwarder
    return forwarder["pid"]


def line_first(c: Host) -> list[int]:
    """How many messages each line delivered first to the counting consumer."""
    return counter(c).get("line_first", [0, 0])


def kill_line_a(fa: Host, c: Host) -> None:
    """SIGKILL fa's forwarder; its supervisor starts it again; meanwhile line B carried
    everything, and line A delivers first again once it is back."""
    pid, first = forwarder_pid(fa), line_first(c)
    os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        child = (fa.status() or {"children": {}})["children"].get("forwarder") or {}
        return child.get("state") == "running" and child.get("pid") != pid \
            and child.get("restarts", 0) >= 1
    wait_until(restarted, timeout=20, what="fa's supervisor to restart its forwarder")
    grows(lambda: line_first(c)[0], "line A to deliver first again")
    assert line_first(c)[1] > first[1]


def line_b(host: Host) -> str:
    status = host.status()
    return status["bus"]["lines"][1]["state"] if status else ""


def cut_line_b(machines: Hosts, h1: Host, c: Host) -> None:
    """Pull fb's cable, under load, until h1 and c say line B is unreachable (3 s without
    their own heartbeat back on it: the bus sockets' heartbeats drop every connection to fb
    then too), and a second more; plug it back; line B delivers first again."""
    machines.cut("fb")
    try:
        for host in (h1, c):
            wait_until(lambda: line_b(host) == "unreachable", timeout=15,
                       what=f"{host.role} to find line B unreachable", interval=0.1)
        time.sleep(1.0)  # a deliberate outage, not a wait for something
    finally:
        machines.restore("fb")
    grows(lambda: line_first(c)[1], "line B to deliver first again", timeout=20)


# --- the proofs -----------------------------------------------------------------------------

def assert_exactly_once(report: dict[str, Any]) -> None:
    """Per topic and epoch: contiguous, none repeated, no gap told, nothing dropped; but for
    fb's own publishers (its supervisor's and its forwarder's heartbeats), whose messages
    could reach no line while fb's cable was out: lost there, never repeated."""
    isolated = [row for row in report["out_of_order"] if row[0] in CUT_OFF]
    assert report["anomalies"] == len(isolated), report["out_of_order"]
    assert all(seq > previous for _, _, previous, seq in isolated), isolated
    broken = {key: seen for key, seen in report["topics"].items()
              if seen[1] - seen[0] + 1 != seen[2] and key.split()[0] not in CUT_OFF}
    assert broken == {}
    assert [gap for gap in report["gaps"] if gap[0] not in CUT_OFF] == []
    assert (report["duplicates"], report["stale_epoch"]) == (0, 0)
    products = {key.split()[0].split(".")[2].rstrip("|") for key in report["topics"]
                if key.startswith("trade.coinbase.")}
    assert products == set(PRODUCTS)


def assert_recorded(c: Host, report: dict[str, Any]) -> None:
    """No gap in the recording (but in fb's own heartbeats, lost while fb was cut off); it
    holds every handler message the consumer received."""
    recording = Recording(c.run_dir / "recordings")
    cut_off = tuple(topic.encode() for topic in CUT_OFF)
    ranges: dict[str, list[int]] = {}
    bad = []
    for record in recording.records():
        assert record.type != OUTAGE, record
        assert record.type != GAP or record.topic in cut_off, record
        if not record.topic.startswith(tuple(t.encode() for t in HANDLER_TOPICS)):
            continue
        epoch, seq = stamp(record.data)
        key = f"{record.topic.decode()} {epoch}"
        seen = ranges.setdefault(key, [seq, seq - 1])
        if seq != seen[1] + 1:
            bad.append((key, seen[1], seq))
        seen[1] = seq
    assert recording.skipped == [] and bad == []
    for key, (first, last, _) in report["topics"].items():
        if key.startswith(HANDLER_TOPICS):
            assert ranges[key][0] <= first and last <= ranges[key][1], (key, ranges[key])


def start(machines: Hosts, hosts: dict[str, Host]) -> None:
    """The forwarder hosts and c, then h1 (its handler's first books then reach the builder);
    until the load is steady at c, every book live there and both lines up at h1 and c."""
    for role in ("fa", "fb", "c"):
        run(machines, hosts[role])
    for role in ("fa", "fb", "c"):
        wait_until(lambda: all_running(hosts[role]), timeout=30, what=f"{role}'s children")
    h1, c = hosts["h1"], hosts["c"]
    run(machines, h1)
    wait_until(lambda: all_running(h1), timeout=30, what="h1's children")
    wait_until(lambda: every_book_live(c), timeout=30, what="every book live at c")
    wait_until(lambda: lines_up(h1) and lines_up(c), timeout=15, what="both lines up")
    wait_until(lambda: counter(c).get("rate", 0) > MIN_RATE, timeout=15,
               what="the steady load at c")


def faults(machines: Hosts, hosts: dict[str, Host]) -> tuple[float, float]:
    """Line A's forwarder killed, then line B's cable pulled and plugged back: (the handler's
    events a second at c meanwhile, over how many seconds)."""
    h1, c = hosts["h1"], hosts["c"]
    before = counter(c)
    kill_line_a(hosts["fa"], c)
    cut_line_b(machines, h1, c)
    after = counter(c)
    seconds = (after["at_ns"] - before["at_ns"]) / 1e9
    wait_until(lambda: lines_up(h1) and lines_up(c), timeout=15, what="both lines up again")
    return (handler_events(after) - handler_events(before)) / seconds, seconds


def books_equal_the_true_ones(machines: Hosts, c: Host) -> None:
    """The market stands still; the builder's books become the simulator's, every one live."""
    machines.get("h1", f"http://127.0.0.1:{SIM_PORT}/control/quiet?seconds=60")
    truth = true_books(machines)

    def equal() -> bool:
        answers = books(c)
        return bool(answers) and all(a.get("state") == "live" and as_book(a) == truth[p]
                                     for p, a in answers.items())
    wait_until(equal, timeout=20, what="the builder's books equal to the true books",
               interval=0.2)


def stop(c: Host) -> dict[str, Any]:
    """`tickmesh stop` on c (the recorder closes its recording); the counter's last report."""
    stopped = subprocess.run([*TICKMESH, "stop"], cwd=REPO, capture_output=True, text=True,
                             timeout=60, env={**os.environ, "TICKMESH_RUN_DIR": str(c.run_dir)})
    assert stopped.returncode == 0, stopped.stderr
    report = counter(c)
    assert report["final"]
    return report


def tell_logs(hosts: dict[str, Host]) -> None:
    """The last lines of each host's supervisor (shown when the test fails)."""
    for host in hosts.values():
        path = host.home / "supervisor.log"
        lines = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
        print(f"--- {host.role}: {path}", *lines, sep="\n")


def test_a_bus_across_machines_loses_nothing_when_a_forwarder_dies_and_a_link_is_cut(
        run_dir: Path) -> None:
    started = time.monotonic()
    with Hosts(ADDRESSES) as machines:  # skips here without root or network namespaces
        hosts = set_up(run_dir)
        try:
            start(machines, hosts)
            faults_ns = time.time_ns()
            rate, seconds = faults(machines, hosts)
            books_equal_the_true_ones(machines, hosts["c"])
            report = stop(hosts["c"])
        except BaseException:
            tell_logs(hosts)
            raise
    assert machines.left() == []

    assert rate >= MIN_RATE, f"{rate:.0f} events/s through the faults"
    assert_exactly_once(report)
    first_a, first_b = report["line_first"]
    summary = {key: report[key] for key in ("received", "line_first", "line_duplicates")}
    assert first_a > 0 and first_b > 0 and report["line_duplicates"] > 0, summary
    assert {s[1] for s in report["statuses"] if s[2] == "live"} == set(PRODUCTS)  # it saw them
    left_live = [s for s in report["statuses"] if s[0] >= faults_ns and s[2] != "live"]
    assert left_live == []
    assert_recorded(hosts["c"], report)
    print(f"\nacross machines: {rate:.0f} events/s over {seconds:.1f} s of faults, "
          f"{report['received']} messages once each, lines first A {first_a} B {first_b}, "
          f"{report['line_duplicates']} second copies dropped, "
          f"{time.monotonic() - started:.1f} s")
