"""Config loading: defaults, placeholders, the implicit forwarder, and every kind of mistake
reported with its file and key."""

import os
from pathlib import Path

import pytest

from tickmesh.bus.sockets import BusConfig
from tickmesh.supervisor.config import RUN_DIR_ENV, ConfigError, load

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
    assert (forwarder.name, forwarder.run, forwarder.settings) == ("forwarder", "tickmesh.runtime.forwarder", {})
    assert (child.restart, child.max_restarts, child.within_seconds, child.shutdown_timeout,
            child.settings) == ("permanent", 5, 60, 3.0, {})
    assert (config.bus.subscriber_hwm, config.bus.receive_hwm) == (100_000, 10_000)


def test_the_consumers_receive_queue_is_its_own_setting(write):
    """[bus] receive_hwm (each consumer's receive queue) is apart from subscriber_hwm (the
    forwarder's queue to each subscriber): a stalled consumer holds what both hold."""
    config = load(write("[bus]\nsubscriber_hwm = 7000\nreceive_hwm = 300\n" + MINIMAL))
    assert (config.bus.subscriber_hwm, config.bus.receive_hwm) == (7000, 300)
    assert BusConfig.from_dict(config.bus.to_dict()).receive_hwm == 300


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
                     "binance-sim", "kraken-sim", "books", "alpaca", "polygon", "ib", "coinbase",
                     "binance", "kraken", "recorder", "bars", "monitor"]


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


def _children_after(*pairs: tuple[str, list[str]]) -> str:
    return "".join(f"[[children]]\nname = '{name}'\nrun = 'pkg.mod'\nafter = {after}\n"
                   for name, after in pairs)


@pytest.mark.parametrize("pairs, expected", [
    ([("a", ["b"]), ("b", ["a"])], "children[0].after: a cycle: a -> b -> a"),
    ([("d", ["a"]), ("a", ["b"]), ("b", ["c"]), ("c", ["a"])],
     "children[1].after: a cycle: a -> b -> c -> a"),
])
def test_a_cycle_in_after_is_named_once(write, pairs, expected):
    [problem] = problems(write(_children_after(*pairs)))
    assert problem.startswith(expected), problem


def test_an_unknown_after_names_the_child_and_its_own_table(write):
    text = ("[[children]]\nname = 'a'\n"  # children[0] (no run) is dropped: the others keep their index
            + _children_after(("b", ["c"]), ("c", ["nope", "c"])))
    assert problems(write(text)) == [
        "children[0].run: missing (required)",
        "children[2] (c).after: 'nope' is not another child",
        "children[2] (c).after: 'c' is not another child",
    ]


def test_children_that_wait_for_the_same_one_are_no_cycle(write):
    config = load(write(_children_after(("a", ["b", "c"]), ("b", ["d"]), ("c", ["d"]), ("d", []))))
    assert [child.name for child in config.children] == ["a", "b", "c", "d"]


SECONDS = "more than 0 and at most 86400"


@pytest.mark.parametrize("text, expected", [
    (MINIMAL + "ready_timeout = 1e999\n", f"children[0].ready_timeout: must be {SECONDS}, not inf"),
    (MINIMAL + "ready_timeout = nan\n", f"children[0].ready_timeout: must be {SECONDS}, not nan"),
    (MINIMAL + "ready_timeout = 86401\n", f"children[0].ready_timeout: must be {SECONDS}, not 86401"),
    (MINIMAL + "within_seconds = inf\n", f"children[0].within_seconds: must be {SECONDS}, not inf"),
    (MINIMAL + "within_seconds = 0\n", f"children[0].within_seconds: must be {SECONDS}, not 0"),
    (MINIMAL + "shutdown_timeout = -inf\n",
     f"children[0].shutdown_timeout: must be {SECONDS}, not -inf"),
    (MINIMAL + "shutdown_timeout = -0.5\n",
     f"children[0].shutdown_timeout: must be {SECONDS}, not -0.5"),
    (MINIMAL + "max_restarts = -1\n", "children[0].max_restarts: must be from 0 to 1000000, not -1"),
    (MINIMAL + "max_restarts = 10000000\n",
     "children[0].max_restarts: must be from 0 to 1000000, not 10000000"),
    ("[bus]\nhwm = 0\n", "bus.hwm: must be from 1 to 2147483647, not 0"),
    ("[bus]\nhwm = 2147483648\n", "bus.hwm: must be from 1 to 2147483647, not 2147483648"),
    ("[bus]\nsubscriber_hwm = 4294967296\n",
     "bus.subscriber_hwm: must be from 1 to 2147483647, not 4294967296"),
    ("[bus]\nreceive_hwm = 0\n", "bus.receive_hwm: must be from 1 to 2147483647, not 0"),
    ("[bus]\nmax_message_bytes = 99999999999999999999\n",
     "bus.max_message_bytes: must be from 1 to 9223372036854775807, not 99999999999999999999"),
    ("[supervisor]\nlog_max_bytes = 0\n",
     "supervisor.log_max_bytes: must be from 1 to 9223372036854775807, not 0"),
    ("[supervisor]\nlog_backups = 1000000000\n",
     "supervisor.log_backups: must be from 1 to 1000, not 1000000000"),
    ("[supervisor]\nimport_timeout = nan\n",
     "supervisor.import_timeout: must be more than 0 and at most 600, not nan"),
    ("[supervisor]\nimport_timeout = 0\n",
     "supervisor.import_timeout: must be more than 0 and at most 600, not 0"),
])
def test_every_number_must_be_finite_and_in_range(write, text, expected):
    assert problems(write(text)) == [expected]


def test_numbers_at_the_ends_of_their_ranges(write):
    config = load(write(
        "[bus]\nhwm = 2147483647\nmax_message_bytes = 9223372036854775807\n"
        "[supervisor]\nlog_backups = 1000\nimport_timeout = 600\n"
        + MINIMAL + "ready_timeout = 86400\nwithin_seconds = 0.001\nmax_restarts = 0\n"))
    assert (config.bus.hwm, config.log_backups, config.import_timeout) == (2147483647, 1000, 600)
    assert (config.children[0].ready_timeout, config.children[0].max_restarts) == (86400, 0)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_a_number_in_a_childs_settings_must_be_finite(write, value):
    found = problems(write(MINIMAL + f"settings = {{ rate = {value}, deep = [{{ x = {value} }}] }}\n"))
    shown = "inf" if value == "1e999" else value
    assert found == [f"children[0].settings.rate: must be a finite number, not {shown}",
                     f"children[0].settings.deep[0].x: must be a finite number, not {shown}"]


# --- across machines: line B, the forwarder's line, the supervisor's name (issue 19) -------

LINE_B = "[bus]\npublish_b = 'tcp://10.0.0.2:7001'\nsubscribe_b = 'tcp://10.0.0.2:7002'\n"


def test_one_line_and_a_forwarder_by_default(write):
    config = load(write(MINIMAL))
    assert [line.name for line in config.bus.lines] == ["A"]
    assert (config.bus.forwarder, config.name) == ("A", "supervisor")
    assert config.forwarder.name == "forwarder" and config.bus.served_line.name == "A"


def test_line_b_is_expanded_and_its_forwarder_named_forwarder_b(write):
    config = load(write("[bus]\npublish_b = 'ipc://{run_dir}/publish-b'\n"
                        "subscribe_b = 'ipc://{run_dir}/subscribe-b'\nforwarder = 'B'\n" + MINIMAL))
    uid = os.getuid()
    assert config.bus.publish_endpoints == (f"ipc:///tmp/tickmesh-{uid}/publish",
                                            f"ipc:///tmp/tickmesh-{uid}/publish-b")
    assert config.bus.subscribe_endpoints[1] == f"ipc:///tmp/tickmesh-{uid}/subscribe-b"
    assert [process.name for process in config.processes] == ["forwarder-b", "a"]
    assert config.bus.served_line.name == "B"


def test_a_host_without_a_forwarder_runs_only_its_children(write):
    config = load(write("[bus]\nforwarder = 'none'\n[supervisor]\nname = 'host-2'\n" + MINIMAL))
    assert config.forwarder is None and config.bus.served_line is None
    assert [process.name for process in config.processes] == ["a"]
    assert config.name == "host-2"


def test_a_forwarder_only_host_is_valid(write):
    config = load(write("[bus]\npublish = 'tcp://127.0.0.1:7001'\n"))
    assert [process.name for process in config.processes] == ["forwarder"]


@pytest.mark.parametrize("text, expected", [
    ("[bus]\npublish_b = 'tcp://10.0.0.2:7001'\n",
     "bus.subscribe_b: missing (line B needs both bus.publish_b and bus.subscribe_b)"),
    ("[bus]\nsubscribe_b = 'tcp://10.0.0.2:7002'\n", "bus.publish_b: missing"),
    (LINE_B.replace("tcp://10.0.0.2:7001", "http://x"),
     "bus.publish_b: 'http://x' must start with ipc:// or tcp://"),
    (LINE_B.replace("10.0.0.2:7002", "10.0.0.2"),
     "bus.subscribe_b: 'tcp://10.0.0.2' must be tcp://HOST:PORT"),
    (LINE_B.replace("10.0.0.2:7002", "10.0.0.2:7001"),
     "bus.subscribe_b: 'tcp://10.0.0.2:7001' is also bus.publish_b"),
    (LINE_B.replace("tcp://10.0.0.2:7002", "ipc://{run_dir}/subscribe"),
     "bus.subscribe_b: 'ipc:///tmp/tickmesh-"),
    (LINE_B.replace("tcp://10.0.0.2:7001", "ipc://{run_dir}/control"),
     "bus.publish_b: 'ipc:///tmp/tickmesh-"),
    ("[bus]\npublish_b = 1\n", "bus.publish_b: must be a string"),
    ("[bus]\nforwarder = 'C'\n", "bus.forwarder: 'C' must be \"A\", \"B\" or \"none\""),
    ("[bus]\nforwarder = 'a'\n", "bus.forwarder: 'a' must be"),
    ("[bus]\nforwarder = 'B'\n", "bus.forwarder: \"B\" needs line B"),
    ("[bus]\nforwarder = 'none'\n", "bus.forwarder: \"none\" and no [[children]]"),
    ("[supervisor]\nname = 'Host 2'\n", "supervisor.name: 'Host 2' must match [a-z0-9_-]+"),
    ("[supervisor]\nname = 'forwarder'\n",
     "supervisor.name: 'forwarder' is the name of line A's forwarder"),
    (LINE_B + "[supervisor]\nname = 'forwarder-b'\n",
     "supervisor.name: 'forwarder-b' is the name of line B's forwarder"),
    ("[supervisor]\nname = 'host-2'\n" + MINIMAL.replace('"a"', '"host-2"'),
     "children[0].name: 'host-2' is already the name of the supervisor itself"),
    (LINE_B + "[[children]]\nname = 'forwarder-b'\nrun = 'x'\n",
     "children[0].name: 'forwarder-b' is already the name of line B's forwarder"),
    ("[bus]\nforwarder = 'none'\n[[children]]\nname = 'forwarder'\nrun = 'x'\n",
     "children[0].name: 'forwarder' is already the name of line A's forwarder"),
])
def test_mistakes_in_the_lines_are_named(write, text, expected):
    found = problems(write(text))
    assert any(problem.startswith(expected) for problem in found), found


def test_the_same_endpoint_on_both_lines_names_both_keys(write):
    found = problems(write(LINE_B.replace("tcp://10.0.0.2:7001", "tcp://10.0.0.1:7001")
                           .replace("[bus]\n", "[bus]\npublish = 'tcp://10.0.0.1:7001'\n")))
    assert found == ["bus.publish_b: 'tcp://10.0.0.1:7001' is also bus.publish: every bus "
                     "endpoint, on either line, and supervisor.control must differ"]


def test_warnings_cover_line_b(write):
    from tickmesh.supervisor.config import warnings
    found = warnings(load(write(LINE_B + "[[children]]\nname = 'a'\nrun = 'pkg.mod'\n")))
    assert [warning.split(":")[0] for warning in found] == ["bus.publish_b", "bus.subscribe_b"]
