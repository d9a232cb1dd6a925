"""Security (issue 9): a bus across machines with ZeroMQ CURVE (encryption, and only
authorized key pairs may publish or subscribe), `tickmesh keys`, the warning for an open tcp
bus, and a control socket only the local user can command. Real processes and sockets; the
three-machine test runs hosts in network namespaces of their own when it runs as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import zmq

from tickmesh.bus.sockets import BusConfig
from tickmesh.runtime.spec import PARENT_ENV, SPEC_ENV, ChildSpec
from tickmesh.supervisor import config
from tests.conftest import free_port
from tickmesh.supervisor.control import NoSupervisor, request_status
from tests.supervised import TICKMESH, Running, child_toml, env, tickmesh, write_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not zmq.has("curve"), reason="libzmq has no CURVE")]

TICKER = "tests.children.ticker"
PROBE = "tests.children.bus_probe"


# --- keys -----------------------------------------------------------------------------------

def make_keys(spawn, run_dir: Path, *names: str) -> Path:
    """`tickmesh keys` for each name, into run_dir/keys; returns that directory."""
    for name in names:
        made = tickmesh(spawn, run_dir, "keys", str(run_dir / "keys"), "--name", name)
        assert made.code == 0, made.err
    return run_dir / "keys"


def authorize(keys: Path, *names: str) -> Path:
    authorized = keys / "authorized"
    authorized.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(keys / f"{name}.key", authorized)
    return authorized


def test_keys_makes_a_key_pair_whose_secret_only_its_owner_reads(spawn, run_dir):
    keys = make_keys(spawn, run_dir, "host-a")
    public, secret = keys / "host-a.key", keys / "host-a.key_secret"
    assert "public-key" in public.read_text() and "secret-key" not in public.read_text()
    assert "secret-key" in secret.read_text()
    assert secret.stat().st_mode & 0o777 == 0o600 and keys.stat().st_mode & 0o777 == 0o700


# --- config ---------------------------------------------------------------------------------

def _problems(run_dir: Path, text: str) -> list[str]:
    path = run_dir / "c.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as raised:
        config.load(path)
    return raised.value.problems


def test_curve_keys_are_checked_each_naming_its_key(spawn, run_dir):
    keys = make_keys(spawn, run_dir, "fwd")
    (keys / "junk").write_text("not a key\n")
    (keys / "open.key_secret").write_text((keys / "fwd.key_secret").read_text())
    (keys / "open.key_secret").chmod(0o644)
    assert _problems(run_dir, "[bus]\ncurve = true\n") == [
        f"bus.{key}: missing (required with curve = true)"
        for key in ("server_key_file", "client_key_file", "authorized_keys")]
    # a host that runs no forwarder (and no tcp control socket) admits nobody: no authorized_keys
    assert _problems(run_dir, '[bus]\ncurve = true\nforwarder = "none"\n[[children]]\n'
                     'name = "x"\nrun = "x"\n') == [
        f"bus.{key}: missing (required with curve = true)"
        for key in ("server_key_file", "client_key_file")]
    problems = _problems(run_dir, '[bus]\ncurve = true\nserver_key_file = "keys/junk"\n'
                         'client_key_file = "keys/fwd.key"\nauthorized_keys = "keys/fwd.key"\n')
    assert problems[0].startswith(f"bus.server_key_file: cannot read a key from {keys}/junk")
    assert problems[1].startswith(f"bus.client_key_file: {keys}/fwd.key holds no secret key")
    assert problems[2].startswith(f"bus.authorized_keys: {keys}/fwd.key is not a directory")
    problems = _problems(run_dir, '[bus]\ncurve = true\nserver_key_file = "keys/fwd.key"\n'
                         'client_key_file = "keys/open.key_secret"\nauthorized_keys = "keys"\n')
    assert problems == [f"bus.client_key_file: {keys}/open.key_secret holds a secret key and "
                        "other users may read it (mode 644): chmod 600 it"]
    assert _problems(run_dir, '[bus]\ncurve = "yes"\n') == ["bus.curve: must be true or false, "
                                                            "not 'yes'"]
    assert _problems(run_dir, '[bus]\nclient_key_file = "keys/fwd.key_secret"\n') == [
        "bus.client_key_file: only used with curve = true"]


def test_a_tcp_control_socket_needs_curve(run_dir):
    assert _problems(run_dir, '[supervisor]\ncontrol = "tcp://127.0.0.1:7000"\n') == [
        "supervisor.control: a tcp:// control socket needs [bus] curve = true (else anyone who "
        "reaches the port commands the supervisor); or use ipc:// (the default)"]


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("*", True), ("10.1.2.3", True),
                                          ("127.0.0.1", False), ("localhost", False)])
def test_check_warns_of_a_tcp_bus_open_to_other_machines_without_curve(spawn, run_dir, host,
                                                                        warned):
    path = write_config(run_dir, f'[bus]\npublish = "tcp://{host}:7001"\n')
    checked = tickmesh(spawn, run_dir, "check", str(path))
    assert checked.code == 0 and checked.out.startswith("ok:"), checked.err
    warning = (f"tickmesh: warning: {path}: bus.publish: tcp://{host}:7001 is reachable from "
               "other machines and curve is off")
    assert (warning in checked.err) is warned, checked.err


def test_check_does_not_warn_of_an_open_tcp_bus_with_curve(spawn, run_dir):
    keys = make_keys(spawn, run_dir, "fwd")
    authorize(keys, "fwd")
    path = write_config(run_dir, '[bus]\npublish = "tcp://0.0.0.0:7001"\ncurve = true\n'
                        'server_key_file = "keys/fwd.key_secret"\n'
                        'client_key_file = "keys/fwd.key_secret"\n'
                        'authorized_keys = "keys/authorized"\n')
    checked = tickmesh(spawn, run_dir, "check", str(path))
    assert checked.code == 0 and checked.err == "", checked.err


# --- the bus --------------------------------------------------------------------------------

class Bus:
    """Key pairs fwd, good and bad (only fwd and good authorized) and the bus config of each
    holder: the forwarder's (its key pair), a good and a bad peer's (the forwarder's public
    key only, and their own pair)."""

    def __init__(self, spawn, run_dir: Path, publish: str, subscribe: str) -> None:
        keys = make_keys(spawn, run_dir, "fwd", "good", "bad")
        self.forwarder = BusConfig(publish, subscribe, curve=True,
                                   server_key_file=str(keys / "fwd.key_secret"),
                                   client_key_file=str(keys / "fwd.key_secret"),
                                   authorized_keys=str(authorize(keys, "fwd", "good")))
        peer = replace(self.forwarder, server_key_file=str(keys / "fwd.key"), authorized_keys="")
        self.good = replace(peer, client_key_file=str(keys / "good.key_secret"))
        self.bad = replace(peer, client_key_file=str(keys / "bad.key_secret"))
        self.plain = BusConfig(publish, subscribe)  # no CURVE at all


def start(spawn, module: str, name: str, bus: BusConfig, settings: dict | None = None,
          netns: str | None = None) -> subprocess.Popen:
    """A child module with its spec, as the supervisor starts it (in network namespace
    `netns` if given), its stdout piped."""
    env = {SPEC_ENV: ChildSpec(name, settings or {}, bus).to_json(), PARENT_ENV: str(os.getpid())}
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return spawn([*prefix, sys.executable, "-m", module], env=env, stdout=subprocess.PIPE,
                 text=True)


def probe(spawn, role: str, name: str, bus: BusConfig, netns: str | None = None):
    return start(spawn, PROBE, name, bus, {"role": role}, netns)


def line(process: subprocess.Popen) -> str:
    """The process's next line of output (the test's timeout bounds the wait)."""
    text = process.stdout.readline()
    assert text, f"process {process.args} ended (exit {process.poll()})"
    return text.strip()


def check_curve_bus(spawn, bus: Bus, hosts: dict[str, str | None]) -> None:
    """The forwarder on hosts["forwarder"]; intruders (unauthorized, and without CURVE at all)
    on hosts["intruder"] are refused, get nothing and inject nothing while a publisher on
    hosts["publisher"] reaches a subscriber on hosts["consumer"]."""
    start(spawn, "tickmesh.runtime.forwarder", "forwarder", bus.forwarder, netns=hosts["forwarder"])
    intruders = [probe(spawn, "sub", "spy", bus.bad, hosts["intruder"]),
                 probe(spawn, "pub", "intruder", bus.bad, hosts["intruder"]),
                 probe(spawn, "sub", "plainspy", bus.plain, hosts["intruder"]),
                 probe(spawn, "pub", "plainintruder", bus.plain, hosts["intruder"])]
    for intruder in intruders:  # the forwarder is up, and has refused each of them
        assert line(intruder) == "refused"
    start(spawn, TICKER, "ticker", bus.good, netns=hosts["publisher"])
    consumer = probe(spawn, "sub", "consumer", bus.good, hosts["consumer"])
    seen = []
    while seen.count("event trade.ticker.TICK|") < 50:  # while the intruders publish too
        seen.append(line(consumer))
    assert not [event for event in seen if "intruder" in event]
    for spy in intruders[0], intruders[2]:
        spy.terminate()
        rest = spy.communicate(timeout=10)[0].split()
        assert set(rest) <= {"refused"}, rest  # not one event reached it


def test_a_curve_bus_admits_only_authorized_keys_on_loopback(spawn, run_dir):
    bus = Bus(spawn, run_dir, f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}")
    check_curve_bus(spawn, bus, dict.fromkeys(("forwarder", "publisher", "consumer", "intruder")))


HOSTS = {"forwarder": "10.199.0.1", "publisher": "10.199.0.2", "consumer": "10.199.0.3",
         "intruder": "10.199.0.4"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def machines():
    """Four hosts (network namespaces, named by role) on one switch (a bridge in a namespace of
    its own), 10.199.0.0/24; all deleted afterwards, even when the test or the setup fails."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make network namespaces (ip netns)")
    prefix = f"tm{os.getpid()}"
    switch = f"{prefix}-switch"
    names = {role: f"{prefix}-{role}" for role in HOSTS}
    made = []
    try:
        try:
            _ip("netns", "add", switch)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"ip netns is not usable here: {exc.stderr.decode().strip()}")
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for index, (role, address) in enumerate(HOSTS.items()):
            host = names[role]
            _ip("netns", "add", host)
            made.append(host)
            _ip("link", "add", "eth0", "netns", host, "type", "veth", "peer", "name",
                f"port{index}", "netns", switch)
            _ip("-n", switch, "link", "set", f"port{index}", "master", "br0", "up")
            _ip("-n", host, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", host, "link", "set", "eth0", "up")
            _ip("-n", host, "link", "set", "lo", "up")
        yield names
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def test_a_curve_bus_across_machines(machines, spawn, run_dir):
    forwarder = HOSTS["forwarder"]
    bus = Bus(spawn, run_dir, f"tcp://{forwarder}:5555", f"tcp://{forwarder}:5556")
    check_curve_bus(spawn, bus, machines)


# --- the control socket ---------------------------------------------------------------------

def ask(control: str) -> dict | None:
    try:
        return request_status(control, timeout=1.0)
    except NoSupervisor:
        return None


def test_the_supervisor_makes_its_run_dir_private(spawn, run_dir):
    fresh = run_dir / "fresh"  # no such directory yet
    config_path = write_config(run_dir, child_toml("ticker", TICKER))
    spawn([*TICKMESH, "run", str(config_path)], env=env(fresh), stderr=subprocess.DEVNULL)
    wait_until(lambda: ask(f"ipc://{fresh}/control"), timeout=20, what="the supervisor")
    assert fresh.stat().st_mode & 0o777 == 0o700


def test_the_supervisor_closes_its_own_open_run_dir(spawn, run_dir):
    opened = run_dir / "opened"  # as an older tickmesh left it
    opened.mkdir()
    opened.chmod(0o755)
    config_path = write_config(run_dir, child_toml("ticker", TICKER))
    spawn([*TICKMESH, "run", str(config_path)], env=env(opened), stderr=subprocess.DEVNULL)
    wait_until(lambda: ask(f"ipc://{opened}/control"), timeout=20, what="the supervisor")
    assert opened.stat().st_mode & 0o777 == 0o700


def test_the_supervisor_refuses_a_control_socket_in_someone_elses_directory(spawn, run_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    shared = run_dir / "shared"
    shared.mkdir(mode=0o755)
    os.chown(shared, 65534, 65534)  # nobody's
    config_path = write_config(run_dir, child_toml("ticker", TICKER))
    ran = tickmesh(spawn, shared, "run", str(config_path))
    assert ran.code == 1
    assert (f"cannot bind the control socket ipc://{shared}/control: its directory {shared} is "
            "accessible to other users (mode 755, owner uid 65534") in ran.err, ran.err
    assert not (shared / "publish").exists()


def test_a_tcp_control_socket_answers_only_authorized_keys(spawn, run_dir):
    keys = make_keys(spawn, run_dir, "fwd", "good", "bad")
    authorize(keys, "fwd", "good")
    control = f"tcp://127.0.0.1:{free_port()}"
    bus = (f'[bus]\npublish = "tcp://127.0.0.1:{free_port()}"\n'
           f'subscribe = "tcp://127.0.0.1:{free_port()}"\ncurve = true\n'
           'server_key_file = "keys/fwd.key_secret"\nauthorized_keys = "keys/authorized"\n')
    own = write_config(run_dir, bus + 'client_key_file = "keys/fwd.key_secret"\n'
                       f'[supervisor]\ncontrol = "{control}"\n\n' + child_toml("ticker", TICKER))
    Running(spawn, run_dir, own)
    good, bad = run_dir / "good.toml", run_dir / "bad.toml"
    for path, key in ((good, "good"), (bad, "bad")):
        path.write_text(own.read_text().replace("keys/fwd.key_secret\"\n[supervisor]",
                                                f"keys/{key}.key_secret\"\n[supervisor]"))
    status = wait_until(lambda: (r := tickmesh(spawn, run_dir, "status", str(good), "--json"))
                        .code == 0 and r, timeout=20, what="the supervisor to answer")
    assert "ticker" in json.loads(status.out)["children"]
    refused = tickmesh(spawn, run_dir, "status", str(bad), "--timeout", "1")
    assert refused.code == 1 and "no supervisor answered" in refused.err
    tail = tickmesh(spawn, run_dir, "tail", "trade.ticker", "--count", "3", "--json",
                    "--config", str(good))
    assert tail.code == 0 and len(tail.out.splitlines()) == 3, tail.err
