"""Handlers against hostile or flapping providers, and secrets: a server that subscribes and
drops at once gets ever longer waits; credentials a provider echoes back reach neither the bus
nor the log, not even in part; a child's environment holds only the secrets its settings name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tickmesh.bus.events import Status
from tests.buslog import BusLog
from tests.scripted_server import CLOSE, ScriptedServer
from tests.supervised import Running, child_toml, write_config

KEY = "AKTESTKEY0123456789Z"                        # 20 characters, like Alpaca's
SECRET = "Wq8dLz3Rk5Tn1Xv7Bm2Hc9Fp4Gs6Jy0Ae3Ui8KoQ"  # 40
# (not periodic like "s3cr3tS3CR3T...": "secret s3cr3t..." would be masked from the "t" of
# "secret" on, "t s3cr3tS" being 8 characters of such a secret in any case, spaced)
CONNECTED = '[{"T":"success","msg":"connected"}]'
AUTHENTICATED = '[{"T":"success","msg":"authenticated"}]'
SUBSCRIBED = '[{"T":"subscription","trades":["AAPL"],"quotes":["AAPL"],"bars":[]}]'
HANDLER_SETTINGS = {"symbols": ["AAPL"], "encoding": "json", "stale_after": 0,
                    "key_env": "TM_TEST_ALPACA_KEY", "secret_env": "TM_TEST_ALPACA_SECRET"}
BUS_PATTERNS = ["status.alpaca"]


@pytest.fixture
def credentials(monkeypatch) -> None:
    """KEY and SECRET where the handler reads them (HANDLER_SETTINGS' key_env and secret_env)."""
    monkeypatch.setenv("TM_TEST_ALPACA_KEY", KEY)
    monkeypatch.setenv("TM_TEST_ALPACA_SECRET", SECRET)


def connect_times(bus: BusLog) -> list[int]:
    return [s.ts_event for s in bus.of(Status) if s.state == "connecting"]


def test_a_server_that_subscribes_and_drops_at_once_gets_a_growing_backoff(
        start_handler, credentials, bus):
    def script(text: str) -> list:
        action = json.loads(text)["action"]
        return [AUTHENTICATED] if action == "auth" else [SUBSCRIBED, CLOSE]

    with ScriptedServer(script, greeting=[CONNECTED]) as server:
        start_handler("alpaca", url=server.url, backoff_min=0.05, backoff_max=10)
        bus.until(lambda _: len(connect_times(bus)) >= 7, what="seven connection attempts")
    assert bus.states().count("subscribed") >= 5  # every connection got all the way
    times = connect_times(bus)[:7]
    gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
    # waits of at least half of 0.05, 0.1, ... 1.6 s: without the reset on "subscribed",
    # the last is at least 0.8 s, far more than the first
    assert gaps[-1] >= 0.8 and gaps[-1] > 4 * gaps[0], gaps


def test_echoed_credentials_reach_neither_the_bus_nor_the_log(start_handler, credentials, bus,
                                                              tmp_path):
    def script(text: str) -> list:
        if json.loads(text)["action"] != "auth":
            return []
        # undecodable: the client logs its first 80 bytes, which end 24 characters into SECRET
        garbage = "not json " + "x" * 47 + SECRET
        error = json.dumps([{"T": "error", "code": 402,
                             "msg": f"auth failed for key {KEY} with secret {SECRET}"}])
        return [garbage, error]

    log = tmp_path / "alpaca.log"
    with ScriptedServer(script, greeting=[CONNECTED]) as server:
        start_handler("alpaca", url=server.url, log=log, backoff_min=0.05, backoff_max=0.1)
        bus.until(lambda _: len([s for s in bus.of(Status) if s.state == "error"]) >= 2,
                  what="two echoed auth errors")
    messages = " ".join(s.message for s in bus.of(Status))
    text = log.read_text()
    assert "auth failed for key *** with secret ***" in messages
    assert "undecodable frame" in text and "***" in text
    for leak in (KEY, SECRET, SECRET[:8], KEY[:8]):
        assert leak not in messages and leak not in text


def test_a_child_gets_only_the_secrets_its_settings_name(spawn, run_dir, monkeypatch):
    monkeypatch.setenv("TM_TEST_ALPACA_SIM_KEY", "Q7hXk2Lp9vRt")
    monkeypatch.setenv("TM_TEST_POLYGON_SIM_KEY", "Zm4Wc8Nd1sYb")
    monkeypatch.setenv("TM_TEST_UNNAMED_SECRET", "Jf6Gq3Ue5aPo")
    config = write_config(
        run_dir,
        child_toml("alpaca-sim", "tickmesh.handlers.alpaca.sim.server",
                   {"port": 0, "key_env": "TM_TEST_ALPACA_SIM_KEY"}),
        child_toml("polygon-sim", "tickmesh.handlers.polygon.sim.server",
                   {"port": 0, "key_env": "TM_TEST_POLYGON_SIM_KEY"}))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_for("alpaca-sim", "running", timeout=15)
    supervisor.wait_for("polygon-sim", "running", timeout=15)
    children = supervisor.status()["children"]

    def environment(name: str) -> dict[str, str]:
        raw = Path(f"/proc/{children[name]['pid']}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode().split("\0") if item)

    alpaca, polygon = environment("alpaca-sim"), environment("polygon-sim")
    assert alpaca["TM_TEST_ALPACA_SIM_KEY"] == "Q7hXk2Lp9vRt"
    assert polygon["TM_TEST_POLYGON_SIM_KEY"] == "Zm4Wc8Nd1sYb"
    assert "TM_TEST_POLYGON_SIM_KEY" not in alpaca and "TM_TEST_ALPACA_SIM_KEY" not in polygon
    for env in (alpaca, polygon):
        assert "TM_TEST_UNNAMED_SECRET" not in env
        assert env["PATH"] and env["TICKMESH_RUN_DIR"] == str(run_dir)


def test_a_variable_named_by_a_settings_default_reaches_its_child(spawn, run_dir, monkeypatch):
    """The Polygon handler's key_env defaults to POLYGON_API_KEY: the config need not name it."""
    monkeypatch.setenv("POLYGON_API_KEY", "Lr8Vb2Qx6Tn4")
    config = write_config(run_dir, child_toml("polygon", "tickmesh.handlers.polygon.handler", {
        "url": "ws://127.0.0.1:9/stocks", "symbols": ["AAPL"]}))
    supervisor = Running(spawn, run_dir, config)
    pid = supervisor.wait_for("polygon", "running", timeout=15)["pid"]
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"POLYGON_API_KEY=Lr8Vb2Qx6Tn4\0" in raw + b"\0"
