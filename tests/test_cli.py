"""The `tickmesh` command line, run as a real process."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import zmq

from tests.conftest import REPO, free_port
from tests.supervised import TICKMESH, Running, child_toml, env, tickmesh, write_config

TICKER = "tests.children.ticker"


def test_the_console_script_checks_the_default_config(spawn, run_dir):
    script = Path(sys.executable).parent / "tickmesh"
    process = spawn([str(script), "check", "config/default.toml"], stdout=-1, text=True)
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert out.startswith("ok: config/default.toml")


def test_check_names_the_file_and_every_bad_key(spawn, run_dir):
    config = write_config(run_dir, child_toml("a", TICKER, restart="sometimes"),
                          child_toml("a", TICKER, max_restarts="5"))
    result = tickmesh(spawn, run_dir, "check", str(config))
    assert result.code == 2 and result.out == ""
    assert f"{config}: children[0].restart: 'sometimes' is not one of" in result.err
    assert f"{config}: children[1].max_restarts: must be an integer" in result.err
    assert f"{config}: children[1].name: 'a' is already the name of children[0]" in result.err


def test_run_refuses_a_bad_config_before_starting_anything(spawn, run_dir):
    config = write_config(run_dir, child_toml("a", TICKER, color="red"))
    result = tickmesh(spawn, run_dir, "run", str(config))
    assert result.code == 2
    assert "children[0].color: unknown key" in result.err
    assert not (run_dir / "publish").exists()


def test_run_with_a_missing_config(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "run", str(run_dir / "nope.toml"))
    assert result.code == 2 and "nope.toml: cannot read" in result.err


def test_status_prints_a_table(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    supervisor = Running(spawn, run_dir, config)
    pid = supervisor.wait_for("ticker", "running")["pid"]
    result = tickmesh(spawn, run_dir, "status", str(config))
    assert result.code == 0, result.err
    header, *rows = result.out.split("\n\n")[1].splitlines()  # no feed: the processes, the bus
    assert header.split() == ["name", "state", "ready", "pid", "uptime", "restarts", "exit",
                              "cpu%", "rss_mb", "out/s", "in/s", "heartbeat"]
    assert [row.split()[0] for row in rows] == ["supervisor", "forwarder", "ticker"]
    ticker = rows[2].split()
    assert ticker[1:4] == ["running", "yes", str(pid)] and ticker[5:7] == ["0", "-"]
    assert float(ticker[7]) >= 0 and float(ticker[8]) > 1  # CPU %, resident MB


def test_status_without_a_supervisor_fails_clearly(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    result = tickmesh(spawn, run_dir, "status", str(config), "--timeout", "0.2")
    assert result.code == 1
    assert f"no supervisor answered at ipc://{run_dir}/control within 0.2 s" in result.err
    assert f"tried the system of run dir {run_dir}" in result.err


def test_run_fails_clearly_when_the_control_endpoint_is_taken(spawn, run_dir):
    port = free_port()
    made = tickmesh(spawn, run_dir, "keys", str(run_dir / "keys"), "--name", "fwd")
    assert made.code == 0  # a tcp:// control socket needs CURVE
    config = write_config(run_dir, '[bus]\ncurve = true\nserver_key_file = "keys/fwd.key_secret"\n'
                          'client_key_file = "keys/fwd.key_secret"\nauthorized_keys = "keys"\n'
                          f'[supervisor]\ncontrol = "tcp://127.0.0.1:{port}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = tickmesh(spawn, run_dir, "run", str(config))
    assert result.code == 1
    assert f"cannot bind the control socket tcp://127.0.0.1:{port}" in result.err


def test_sim_with_an_unknown_provider(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "sim", "nosuchprovider", "--port", "1")
    assert result.code == 2
    assert "unknown provider 'nosuchprovider' (no module tickmesh.handlers.nosuchprovider.sim.server)" \
        in result.err


def test_sim_with_a_provider_that_is_not_a_name(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "sim", "../alpaca")
    assert result.code == 2 and "'../alpaca' is not a provider name" in result.err


def test_unknown_arguments_are_refused(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "check", str(REPO / "config" / "default.toml"), "--bogus")
    assert result.code == 2 and "unrecognized arguments: --bogus" in result.err


def test_sim_hands_its_arguments_to_the_provider_simulator(spawn, run_dir):
    result = tickmesh(spawn, run_dir, "sim", "polygon", "--help")
    assert result.code == 0, result.err
    assert result.out.startswith("usage:") and "--port" in result.out


def test_a_second_supervisor_on_the_same_run_dir_is_refused(spawn, run_dir):
    config = write_config(run_dir, child_toml("ticker", TICKER))
    first = Running(spawn, run_dir, config)
    first.wait_for("ticker", "running")
    result = tickmesh(spawn, run_dir, "run", str(config))
    assert result.code == 1
    assert f"bus.publish: ipc://{run_dir}/publish: another process listens there" in result.err
    assert first.child("ticker")["state"] == "running"


def test_the_control_socket_answers_a_bad_request_and_carries_on(spawn, run_dir):
    supervisor = Running(spawn, run_dir, write_config(run_dir))
    supervisor.wait_for("forwarder", "running")
    with zmq.Context.instance().socket(zmq.REQ) as requester:
        requester.connect(supervisor.control)
        requester.send_multipart([b"\xff garbage", b"more"])
        assert requester.poll(5000)
        assert "unknown request" in json.loads(requester.recv())["error"]
    assert supervisor.child("forwarder")["state"] == "running"


def test_a_reader_that_goes_away_gets_no_traceback(spawn, run_dir):
    process = spawn([*TICKMESH, "check", "config/default.toml"], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, env=env(run_dir))
    process.stdout.close()  # as `| head -0` does, before the command writes
    _, err = process.communicate(timeout=30)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
    assert process.returncode == 1


def test_check_refuses_a_cycle_in_after_and_an_endless_ready_timeout(spawn, run_dir):
    config = write_config(run_dir, child_toml("a", TICKER, after=["b"]),
                          child_toml("b", TICKER, after=["a"]) + "ready_timeout = 1e999\n")
    result = tickmesh(spawn, run_dir, "check", str(config))
    assert result.code == 2 and result.out == ""
    assert f"{config}: children[0].after: a cycle: a -> b -> a" in result.err
    assert f"{config}: children[1].ready_timeout: must be more than 0 and at most 86400, not inf" \
        in result.err


def check_from(spawn, run_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`tickmesh check` with no CONFIG, run from `cwd`."""
    process = spawn([*TICKMESH, "check"], env=env(run_dir), cwd=cwd, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=20)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_init_writes_the_shipped_configs_and_overwrites_nothing(spawn, run_dir):
    target = run_dir / "project" / "config"
    made = tickmesh(spawn, run_dir, "init", str(target))
    assert made.code == 0, made.err
    shipped = sorted((REPO / "config").glob("*.toml"))
    assert sorted(path.name for path in target.iterdir()) == [path.name for path in shipped]
    assert all((target / path.name).read_text() == path.read_text() for path in shipped)
    (target / "default.toml").write_text("# mine\n")
    (target / "ib-live.example.toml").unlink()
    again = tickmesh(spawn, run_dir, "init", str(target))
    assert again.code == 1
    assert f"{target} already holds crypto-live.example.toml, default.toml, polygon" in again.err
    assert (target / "default.toml").read_text() == "# mine\n"
    assert not (target / "ib-live.example.toml").exists()


def test_check_without_a_config_takes_the_one_here_else_the_installed_one(spawn, run_dir):
    project = run_dir / "project"
    (project / "config").mkdir(parents=True)
    installed = check_from(spawn, run_dir, project)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith(f"ok: {REPO / 'config' / 'default.toml'} (")
    (project / "config" / "default.toml").write_text("# the forwarder alone\n")
    here = check_from(spawn, run_dir, project)
    assert here.returncode == 0, here.stderr
    assert here.stdout == "ok: config/default.toml (1 processes)\n"
