"""The console in a real supervisor's first seconds (issue 20): one "child ready" line per
process, with the pid `status` shows; the first "system" line once every process is ready,
all of them running, none called "stopped"; the "starting" line says whose pid it shows."""

from tests.conftest import free_port
from tests.supervised import Running, child_toml, write_config
from tests.waiting import wait_until

TICKER = "tests.children.ticker"
SLOW = "tests.children.slow_listener"  # says "ready" `delay` seconds after it starts


def test_one_ready_line_per_process_then_the_first_system_line(spawn, run_dir):
    config = write_config(  # "late" is started only once "slow" is ready, 4 s in
        run_dir, child_toml("first", TICKER),
        child_toml("slow", SLOW, {"port": free_port(), "delay": 4.0}),
        child_toml("late", TICKER, after=["slow"]))
    supervisor = Running(spawn, run_dir, config)

    def first_system_line():
        events = supervisor.log_events()
        return events if any(event["event"] == "system" for event in events) else None

    events = wait_until(first_system_line, timeout=15, what="the first system line")
    status = supervisor.status()["children"]
    names = ["forwarder", "first", "slow", "late"]

    ready = [event for event in events if event["event"] == "child ready"]
    assert sorted(event["child"] for event in ready) == sorted(names)
    assert {event["child"]: event["pid"] for event in ready} == \
        {name: status[name]["pid"] for name in names}
    system_at = next(i for i, event in enumerate(events) if event["event"] == "system")
    assert max(events.index(event) for event in ready) < system_at
    system = events[system_at]
    assert system["running"] == "4 of 4 processes" and "not_running" not in system
    assert "stopped" not in str(system)

    for event in events:  # a starting line's pid is the keeper's, and it says so
        if event["event"] == "child state" and event["state"] == "starting":
            assert event["pid"] != status[event["child"]]["pid"]
            assert "keeper" in event["pid_of"]
