"""handlers.common, the parts that need no connection: backoff, the settings reader, client
settings; and every handler and simulator refusing bad settings as a real child process.
(The reconnecting client itself is exercised end to end in test_alpaca_live.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tickmesh.handlers.common.backoff import Backoff
from tickmesh.handlers.common.client import ClientSettings
from tickmesh.runtime.settings import CommaStrings, SettingsError, Strings, read, require


def test_backoff_doubles_with_equal_jitter_up_to_the_cap():
    low = Backoff(0.1, 1.0, rng=lambda: 0.0)
    high = Backoff(0.1, 1.0, rng=lambda: 0.999999)
    lows = [low.next() for _ in range(6)]
    highs = [high.next() for _ in range(6)]
    assert lows == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert highs == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0], rel=1e-5)
    # below the cap, each wait is at least as long as the previous one could have been
    assert all(nxt >= prev for prev, nxt in zip(highs[:3], lows[1:4]))


def test_backoff_reset_starts_over_and_survives_many_attempts():
    backoff = Backoff(0.5, 30.0, rng=lambda: 1.0)
    for _ in range(1000):
        backoff.next()
    assert backoff.next() == 30.0
    backoff.reset()
    assert backoff.next() == 0.5


def test_backoff_bounds_are_checked():
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)


def test_client_settings_defaults_and_overrides():
    settings = read(ClientSettings, {"url": "wss://x/v2/iex", "stale_after": 0, "backoff_max": 5})
    assert settings == ClientSettings(url="wss://x/v2/iex", stale_after=0.0, backoff_max=5.0)
    assert read(ClientSettings, {"url": "ws://127.0.0.1:1/v2/test"}).url \
        == "ws://127.0.0.1:1/v2/test"


@pytest.mark.parametrize("bad", [{"url": "http://x"}, {"stale_after": -1}, {"ping_timeout": "5"},
                                 {"backoff_min": True}, {"backoff_min": 3, "backoff_max": 1},
                                 {"backoff_min": 0}])
def test_client_settings_errors_name_the_key(bad):
    with pytest.raises(ValueError) as error:
        read(ClientSettings, {"url": "wss://x", **bad})
    assert any(key in str(error.value) for key in bad)


# --- the settings reader -------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Example:
    name: str
    port: int = 1
    rate: float = 1.0
    on: bool = False
    names: Strings = ()
    listed: CommaStrings = ()

    def __post_init__(self) -> None:
        require(self.rate > 0, "rate", "a number > 0", self.rate)


def test_settings_are_read_by_type_with_defaults():
    assert read(Example, {"name": "x"}) == Example(name="x")
    settings = read(Example, {"name": "x", "port": 2, "rate": 3, "on": True,
                              "names": [" A ", "B.C"], "listed": "AAPL, MSFT"})
    assert settings == Example(name="x", port=2, rate=3.0, on=True, names=("A", "B.C"),
                               listed=("AAPL", "MSFT"))
    assert isinstance(settings.rate, float)
    assert read(Example, {"name": "x", "listed": ["A"]}).listed == ("A",)


@pytest.mark.parametrize("raw, message", [
    ({"name": "x", "port": "abc"}, "settings.port: expected an integer, got 'abc'"),
    ({"name": "x", "port": True}, "settings.port: expected an integer, got True"),
    ({"name": "x", "rate": "1"}, "settings.rate: expected a number, got '1'"),
    ({"name": "x", "on": 1}, "settings.on: expected true or false, got 1"),
    ({"name": 5}, "settings.name: expected a string, got 5"),
    ({"name": "x", "names": "A,B"},
     "settings.names: expected a list of non-empty strings, got 'A,B'"),
    ({"name": "x", "listed": "A,,B"}, "settings.listed: expected a list of non-empty strings, or "
                                      "one string of them separated by commas, got 'A,,B'"),
    ({"name": "x", "rate": 0}, "settings.rate: expected a number > 0, got 0.0"),
    ({}, "settings.name: required"),
    ({"name": "x", "prot": 2}, "settings.prot: unknown key (known: listed, name, names, on, "
                               "port, rate)"),
])
def test_settings_errors_name_the_key_and_what_was_expected(raw, message):
    with pytest.raises(SettingsError) as error:
        read(Example, raw)
    assert str(error.value) == message


# --- bad settings stop a child at once --------------------------------------------------------

@pytest.mark.parametrize("module, settings, message", [
    ("tickmesh.handlers.alpaca.handler", {"symbols": ["AAPL"], "stale_after": "abc"},
     "settings.stale_after: expected a number, got 'abc'"),
    ("tickmesh.handlers.polygon.handler", {"symbols": ["AAPL"], "url": "http://x"},
     "settings.url: expected a ws:// or wss:// address, got 'http://x'"),
    ("tickmesh.handlers.ib.handler", {"symbols": ["AAPL"], "depth_rows": -1},
     "settings.depth_rows: expected an integer >= 0, got -1"),
    ("tickmesh.handlers.alpaca.sim.server", {"port": "abc"}, "settings.port: expected an integer, got 'abc'"),
    ("tickmesh.handlers.polygon.sim.server", {"rate": 0}, "settings.rate: expected a number > 0, got 0.0"),
    ("tickmesh.handlers.ib.sim.server", {"symbol": "AAPL"}, "settings.symbol: unknown key"),
])
def test_bad_settings_exit_2_with_one_log_line_naming_the_key(spawn_child, module, settings,
                                                              message):
    proc = spawn_child(module, "child", settings, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2, err
    [line] = [json.loads(line) for line in err.splitlines()]
    assert (line["event"], line["level"], line["process"]) == ("bad settings", "error", "child")
    assert line["error"].startswith(message)


# --- the simulators' shared command line ------------------------------------------------------

PROVIDERS = ["alpaca", "polygon", "ib"]


def sim_cli(spawn, provider: str, *args: str) -> tuple[int, str, str]:
    proc = spawn([sys.executable, "-m", "tickmesh.cli", "sim", provider, *args],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=20)
    return proc.returncode, out, err


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_simulator_has_the_shared_flags(spawn, provider):
    code, out, _ = sim_cli(spawn, provider, "--help")
    assert code == 0 and out.startswith(f"usage: tickmesh sim {provider}")
    for flag in ("--host", "--port", "--rate", "--symbols"):
        assert flag in out
    assert ("--replay FILE" in out) == (provider != "ib")  # IB has nothing to replay


@pytest.mark.parametrize("provider", PROVIDERS)
def test_bad_flags_exit_2_naming_the_setting(spawn, provider):
    code, _, err = sim_cli(spawn, provider, "--rate", "-3")
    assert code == 2
    assert err.rstrip().endswith(f"tickmesh sim {provider}: error: settings.rate: expected a "
                                 f"number > 0, got -3.0")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_port_in_use_exits_1_with_the_reason(spawn, provider):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, _, err = sim_cli(spawn, provider, "--port", str(taken.getsockname()[1]))
    assert code == 1
    assert err.startswith(f"tickmesh sim {provider}: ") and "in use" in err
    assert "Traceback" not in err


def test_abbreviated_flags_are_refused_so_a_key_cannot_pass_for_a_key_env(spawn):
    code, _, err = sim_cli(spawn, "polygon", "--key", "SECRET")
    assert code == 2 and "unrecognized arguments: --key" in err
