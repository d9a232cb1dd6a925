"""Logs, with a real supervisor: whole lines under load (never two run together), the
libraries' lines as ours with secrets masked, rotating log files, `tickmesh logs`, and a
console that goes away."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import IO, Any

from tickmesh.runtime.logs import PrettyLines
from tickmesh.supervisor.control import NoSupervisor, request_status
from tickmesh.supervisor.output import MAX_LINE, Lines
from tests.children.chatter import stdout_line
from tests.supervised import TICKMESH, Running, child_toml, env, tickmesh, write_config
from tests.waiting import wait_until

CHATTER = "tests.children.chatter"
WSLIB = "tests.children.wslib"


def supervisor_toml(**keys: Any) -> str:
    return "[supervisor]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                       for key, value in keys.items())


def stop(supervisor: Running) -> None:
    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(timeout=15) == 0


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of `path`, each of which must be one whole JSON object."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def chatter_numbers(lines: list[dict[str, Any]]) -> list[int]:
    return [line["i"] for line in lines if line.get("event") == "chatter"]


# --- whole lines -------------------------------------------------------------------------------

def test_lines_never_run_together_under_load(spawn, run_dir):
    names = ["chat-a", "chat-b", "chat-c"]
    settings = {"lines": 300, "out_lines": 60, "out_bytes": 40_000, "oversize": 100_000}
    config = write_config(run_dir, *(child_toml(name, CHATTER, settings, restart="temporary")
                                     for name in names))
    supervisor = Running(spawn, run_dir, config)
    for name in names:
        supervisor.wait_for(name, "exited", timeout=30)
    stop(supervisor)

    cut = "o" * MAX_LINE + f" [line cut: {100_000 - MAX_LINE} more bytes dropped]"
    printed = {name: [stdout_line(name, index, 40_000) for index in range(60)] for name in names}
    out = supervisor.out_path.read_text()
    assert out.endswith("\n")
    assert Counter(out.splitlines()) == Counter(
        [line for lines in printed.values() for line in lines] + [cut] * len(names))
    logged = records(supervisor.log_path)  # the children's stderr, and the supervisor's own
    for name in names:
        mine = [line for line in logged if line["process"] == name]
        assert chatter_numbers(mine) == list(range(300))
        assert len([line for line in mine if line.get("logger") == "chatter.library"]) == 300
        in_file = (run_dir / "logs" / f"{name}.log").read_text().splitlines()
        assert Counter(line for line in in_file if not line.startswith("{\"process\"")) == \
            Counter(printed[name] + [cut])
        assert [json.loads(line) for line in in_file if line.startswith("{\"process\"")] == mine


# --- the libraries' lines ---------------------------------------------------------------------

def test_library_lines_are_ours_with_the_process_and_secrets_masked(spawn, run_dir):
    secret = "wslib-secret-4f9a2c77"
    config = write_config(run_dir, child_toml("wslib", WSLIB, restart="temporary"))
    supervisor = Running(spawn, run_dir, config, extra_env={"WSLIB_SECRET": secret})
    supervisor.wait_for("wslib", "exited", timeout=20)
    stop(supervisor)

    log_file = run_dir / "logs" / "wslib.log"
    everything = supervisor.log_path.read_text() + log_file.read_text()
    assert secret[:8] not in everything
    lines = records(log_file)
    library = [line for line in lines if line.get("logger", "").startswith("websockets")]
    assert [(line["event"], line["level"]) for line in library] == [
        ("connection handler failed", "error")]  # no DEBUG frame lines, no INFO chatter
    failed = library[0]
    assert (failed["process"], failed["provider"]) == ("wslib", "wsprov")
    assert "RuntimeError: refused the key ***" in failed["exception"]
    assert "wslib done" in [line["event"] for line in lines]


# --- files ------------------------------------------------------------------------------------

def test_log_files_rotate_keeping_the_configured_number_private(spawn, run_dir):
    config = write_config(run_dir, supervisor_toml(log_max_bytes=20_000, log_backups=2),
                          child_toml("chat", CHATTER, {"lines": 400}, restart="temporary"))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_for("chat", "exited", timeout=30)
    stop(supervisor)

    logs = run_dir / "logs"
    assert sorted(path.name for path in logs.glob("chat.*")) == [
        "chat.log", "chat.log.1", "chat.log.2"]
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in logs.iterdir()} == {0o600}
    files = [logs / "chat.log.2", logs / "chat.log.1", logs / "chat.log"]
    assert all(path.stat().st_size <= 20_000 for path in files)
    kept = [line for path in files for line in records(path)]
    library = [int(line["event"].split()[-1]) for line in kept
               if line.get("logger") == "chatter.library"]
    assert len(kept) < 800 and kept[-1]["event"] == "process stopped"  # the oldest rotated away
    for numbers in (chatter_numbers(kept), library):  # the newest ones, none lost at a rotation
        assert numbers == list(range(400 - len(numbers), 400))
    assert records(logs / "supervisor.log")[-1]["event"] == "supervisor stopped"


# --- tickmesh logs ----------------------------------------------------------------------------

def test_logs_shows_the_last_lines_and_refuses_an_unknown_name(spawn, run_dir):
    config = write_config(run_dir, child_toml("chat", CHATTER, {"lines": 50},
                                              restart="temporary"))
    supervisor = Running(spawn, run_dir, config)
    supervisor.wait_for("chat", "exited", timeout=20)
    in_file = (run_dir / "logs" / "chat.log").read_text().splitlines()

    last = tickmesh(spawn, run_dir, "logs", "chat", "-n", "5")
    unknown = tickmesh(spawn, run_dir, "logs", "nosuch")

    assert last.code == 0, last.err
    assert last.out.splitlines() == in_file[-5:]
    assert unknown.code == 2
    assert "'nosuch'" in unknown.err and "chat, forwarder, supervisor" in unknown.err
    stop(supervisor)
    assert tickmesh(spawn, run_dir, "logs", "chat", "-n", "1", "--config", str(config)).out \
        == in_file[-1] + "\n"
    nothing = tickmesh(spawn, run_dir, "logs", "chat")
    assert nothing.code == 1 and str(run_dir) in nothing.err


class Collected:
    """The lines a stream gives, gathered by a thread as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))


def test_logs_follow_sees_new_lines_across_rotations(spawn, run_dir):
    config = write_config(run_dir, supervisor_toml(log_max_bytes=8_000, log_backups=50),
                          child_toml("chat", CHATTER, {"lines": 300, "interval": 0.01,
                                                        "pad": 200}, restart="temporary"))
    supervisor = Running(spawn, run_dir, config)
    log_file = run_dir / "logs" / "chat.log"
    wait_until(log_file.exists, timeout=15, what="the chatter's log file")
    follower = spawn([*TICKMESH, "logs", "chat", "-f", "-n", "0"], env=env(run_dir),
                     stdout=subprocess.PIPE, text=True)
    followed = Collected(follower.stdout)
    supervisor.wait_for("chat", "exited", timeout=30)

    wait_until(lambda: any("process stopped" in line for line in followed.lines), timeout=10,
               what="the follower to show the chatter's last line")
    seen = chatter_numbers([json.loads(line) for line in followed.lines])
    assert seen == list(range(seen[0], 300))  # nothing lost, nothing twice
    assert set(seen) - set(chatter_numbers(records(log_file)))  # from files rotated since
    assert (run_dir / "logs" / "chat.log.5").exists()  # many rotations
    stop(supervisor)


# --- the console ------------------------------------------------------------------------------

def test_a_console_that_goes_away_does_not_stop_the_supervisor(spawn, run_dir):
    settings = {"lines": 100_000, "out_lines": 100_000, "out_bytes": 200, "interval": 0.01}
    config = write_config(run_dir, child_toml("chat", CHATTER, settings))
    process = spawn([*TICKMESH, "run", str(config)], env=env(run_dir), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    control = f"ipc://{run_dir}/control"
    wait_until(lambda: _state(control, "chat") == "running", timeout=15, what="chat to run")
    process.stdout.close()  # `tickmesh run | head` once head is done
    process.stderr.close()

    own = run_dir / "logs" / "supervisor.log"
    wait_until(lambda: {line.get("stream") for line in records(own)} >= {"stdout", "stderr"},
               timeout=10, what="the supervisor to find both consoles gone")
    size = (run_dir / "logs" / "chat.log").stat().st_size
    wait_until(lambda: (run_dir / "logs" / "chat.log").stat().st_size > size, timeout=10,
               what="the chatter's log file to grow on")
    assert _state(control, "chat") == "running"
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert records(own)[-1]["event"] == "supervisor stopped"


def _state(control: str, name: str) -> str | None:
    try:
        return request_status(control, timeout=1.0)["children"][name]["state"]
    except NoSupervisor:
        return None


# --- pieces -----------------------------------------------------------------------------------

def test_lines_are_put_back_together_and_cut_past_the_limit():
    lines = Lines()
    assert lines.feed(b"one\ntw") == [b"one"]
    assert lines.feed(b"o\n\nthr") == [b"two", b""]
    assert lines.end() == [b"thr"]
    long = b"z" * (MAX_LINE + 10)
    assert lines.feed(long[:100]) == [] and lines.feed(long[100:] + b"\nnext\n") == [
        b"z" * MAX_LINE + b" [line cut: 10 more bytes dropped]", b"next"]


def test_json_log_lines_are_shown_pretty_and_others_unchanged():
    pretty = PrettyLines()
    line = pretty(b'{"process": "x", "event": "connection state", "level": "info", '
                  b'"timestamp": "2026-01-01T00:00:00Z", "state": "subscribed"}')
    assert b"connection state" in line and b"subscribed" in line and not line.startswith(b"{")
    assert pretty(b"plain text") == b"plain text"
    assert pretty(b'{"k": "trade"}') == b'{"k": "trade"}'
