"""Config loading: defaults, placeholders, the implicit forwarder, and every kind of mistake
reported with its file and key."""

import os
from pathlib import Path

import pytest

from supervisor.config import RUN_DIR_ENV, ConfigError, load

REPO = Path(__file__).resolve().parent.parent
MINIMAL = '[[children]]\nname = "a"\nrun = "pkg.mod"\n'


@pytest.fixture
def write(tmp_path, monkeypatch):
    """write(text) -> path of a config file holding text; TICKMESH_RUN_DIR is unset."""
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)

    def _write(text: str) -> Path:
        path = tmp_path / "tickmesh.toml"
        path.write_text(text)
        return path

    return _write


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")
    return caught.value.problems


def test_defaults_and_the_implicit_forwarder(write):
    config = load(write(MINIMAL))
    uid = os.getuid()
    assert config.run_dir == Path(f"/tmp/tickmesh-{uid}")
    assert config.bus.publish == f"ipc:///tmp/tickmesh-{uid}/publish"
    assert config.bus.subscribe == f"ipc:///tmp/tickmesh-{uid}/subscribe"
    assert config.control == f"ipc:///tmp/tickmesh-{uid}/control"
    forwarder, child = config.processes
    assert (forwarder.name, forwarder.run, forwarder.settings) == ("forwarder", "bus.forwarder", {})
    assert (child.restart, child.max_restarts, child.within_seconds, child.shutdown_timeout,
            child.settings) == ("permanent", 5, 60, 3.0, {})


def test_placeholders_are_replaced_everywhere(write):
    config = load(write(
        '[bus]\npublish = "tcp://127.0.0.1:7001"\nhwm = 10\n'
        '[supervisor]\nrun_dir = "/tmp/x-{uid}"\n' + MINIMAL +
        'settings = { path = "{run_dir}/data", nested = { list = ["{uid}", 1] } }\n'
    ))
    uid = os.getuid()
    assert config.run_dir == Path(f"/tmp/x-{uid}")
    assert config.bus.publish == "tcp://127.0.0.1:7001"
    assert config.bus.subscribe == f"ipc:///tmp/x-{uid}/subscribe"
    assert config.bus.hwm == 10
    assert config.children[0].settings == {
        "path": f"/tmp/x-{uid}/data", "nested": {"list": [str(uid), 1]},
    }


def test_the_environment_overrides_run_dir(write, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, "/tmp/elsewhere")
    config = load(write('[supervisor]\nrun_dir = "/tmp/ignored"\n' + MINIMAL))
    assert config.run_dir == Path("/tmp/elsewhere")
    assert config.control == "ipc:///tmp/elsewhere/control"


def test_the_shipped_default_config_is_valid(write):
    config = load(REPO / "config" / "default.toml")
    names = [child.name for child in config.processes]
    assert names == ["forwarder", "alpaca-sim", "polygon-sim", "ib-sim", "coinbase-sim",
                     "binance-sim", "books", "alpaca", "polygon", "ib", "coinbase", "binance",
                     "recorder", "bars", "monitor"]


@pytest.mark.parametrize("text, expected", [
    (MINIMAL + "color = 1\n", "children[0].color: unknown key"),
    ("[bus]\nspeed = 1\n", "bus.speed: unknown key"),
    ("[supervisor]\ncontrl = 'x'\n", "supervisor.contrl: unknown key"),
    ("[busses]\n", "busses: unknown key"),
    ("[[children]]\nname = 'a'\n", "children[0].run: missing"),
    ("[[children]]\nrun = 'a'\n", "children[0].name: missing"),
    (MINIMAL + "restart = 'sometimes'\n", "children[0].restart: 'sometimes' is not one of"),
    (MINIMAL + "max_restarts = '5'\n", "children[0].max_restarts: must be an integer"),
    (MINIMAL + "max_restarts = true\n", "children[0].max_restarts: must be an integer"),
    (MINIMAL + "max_restarts = -1\n", "children[0].max_restarts: must be 0 or more"),
    (MINIMAL + "within_seconds = 0\n", "children[0].within_seconds: must be positive"),
    (MINIMAL + "shutdown_timeout = -0.5\n", "children[0].shutdown_timeout: must be positive"),
    (MINIMAL + "settings = 3\n", "children[0].settings: must be a table"),
    (MINIMAL + "settings = { when = 1979-05-27 }\n", "children[0].settings.when: dates"),
    (MINIMAL + MINIMAL, "children[1].name: 'a' is already the name of children[0]"),
    ("[[children]]\nname = 'forwarder'\nrun = 'x'\n", "children[0].name: 'forwarder' is already"),
    ("[[children]]\nname = 'Alpaca'\nrun = 'x'\n", "children[0].name: 'Alpaca' must match"),
    ("[[children]]\nname = 'a'\nrun = 'handlers/alpaca'\n",
     "children[0].run: 'handlers/alpaca' is not"),
    ("[[children]]\nname = 'a'\nrun = 'x.class'\n", "children[0].run: 'x.class' is not"),
    ("[children]\nname = 'a'\n", "children: must be an array of tables"),
    ("children = [1]\n", "children[0]: must be a table"),
    ("[bus]\npublish = 'http://x'\n", "bus.publish: 'http://x' must start with ipc:// or tcp://"),
    ("[bus]\nsubscribe = 'tcp://localhost'\n",
     "bus.subscribe: 'tcp://localhost' must be tcp://HOST:PORT"),
    ("[supervisor]\ncontrol = 'ipc://'\n", "supervisor.control: 'ipc://' has no path"),
    ("[bus]\nsubscribe = 'ipc://{run_dir}/publish'\n",
     "bus.publish, bus.subscribe and supervisor.control must all differ"),
    ("[bus]\nhwm = 0\n", "bus.hwm: must be positive"),
    ("[bus]\nsubscriber_hwm = 0\n", "bus.subscriber_hwm: must be positive"),
    ("[supervisor]\nrun_dir = 'relative'\n", "supervisor.run_dir: must be an absolute path"),
    ("[bus\n", "not valid TOML"),
])
def test_mistakes_are_named(write, text, expected):
    found = problems(write(text))
    assert any(problem.startswith(expected) for problem in found), found


def test_an_ipc_path_too_long_for_a_unix_socket(write):
    [problem] = problems(write("[supervisor]\ncontrol = 'ipc://{run_dir}/" + "x" * 120 + "'\n"))
    assert problem.startswith("supervisor.control: ") and "longer than 107 bytes" in problem


def test_every_problem_is_reported_at_once(write):
    found = problems(write(MINIMAL + "restart = 'x'\nmax_restarts = 'y'\n[bus]\nhwm = -1\n"))
    assert [problem.split(":")[0] for problem in found] == [
        "bus.hwm", "children[0].max_restarts", "children[0].restart",
    ]


def test_a_missing_file(tmp_path):
    assert problems(tmp_path / "nope.toml") == ["cannot read: No such file or directory"]
