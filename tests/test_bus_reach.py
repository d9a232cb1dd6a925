"""A line's reachability, as supervisor.reach judges it from the heartbeats heard on it: up
only while the supervisor's own heartbeat comes back (both sides work), unreachable otherwise,
saying how long since it was heard, or that it never was."""

from tickmesh.bus.sockets import Line
from tickmesh.supervisor.reach import UNREACHABLE, UP, UP_WITHIN, Reach

A = Line("A", "tcp://10.0.0.1:7001", "tcp://10.0.0.1:7002")
B = Line("B", "tcp://10.0.0.2:7001", "tcp://10.0.0.2:7002")
T0 = 1_700_000_000.0


def states(reach: Reach, now: float) -> dict[str, tuple]:
    return {line["line"]: (line["state"], line["own_heartbeat_age"], line["heartbeat_age"])
            for line in reach.report(now)}


def test_a_line_never_heard_is_unreachable():
    reach = Reach([A, B], served=None)
    assert states(reach, T0) == {"A": (UNREACHABLE, None, None), "B": (UNREACHABLE, None, None)}
    [a, b] = reach.report(T0)
    assert (a["publish"], a["subscribe"], a["forwarder_here"]) == (A.publish, A.subscribe, False)


def test_a_line_is_up_while_its_own_heartbeat_comes_back():
    reach = Reach([A, B], served="A")
    reach.heard("A", own=True, now=T0)
    reach.heard("B", own=True, now=T0 + 0.5)
    assert states(reach, T0 + 1) == {"A": (UP, 1.0, 1.0), "B": (UP, 0.5, 0.5)}
    assert [line["forwarder_here"] for line in reach.report(T0)] == [True, False]
    # line B goes: its heartbeats stop coming; line A's go on
    for second in range(1, 6):
        reach.heard("A", own=True, now=T0 + second)
    assert states(reach, T0 + 5.5) == {"A": (UP, 0.5, 0.5), "B": (UNREACHABLE, 5.0, 5.0)}
    assert reach.up("A", T0 + 5 + UP_WITHIN) and not reach.up("A", T0 + 5.1 + UP_WITHIN)


def test_other_heartbeats_alone_do_not_make_a_line_up():
    """Heard from others but not itself: the line forwards to this host but does not take its
    messages (its publish side is wrong or refused)."""
    reach = Reach([A], served=None)
    reach.heard("A", own=False, now=T0)
    assert states(reach, T0 + 1) == {"A": (UNREACHABLE, None, 1.0)}
    reach.heard("A", own=True, now=T0 + 2)
    assert states(reach, T0 + 2) == {"A": (UP, 0.0, 0.0)}


def test_status_shows_each_line_in_120_columns():
    """The bus table: each line's state, where its forwarder runs, when its own and any
    heartbeat came, its endpoints (the last column cut, if need be, to fit 120 columns)."""
    from tickmesh.commands.status import table
    run = "ipc:///tmp/tickmesh-1000"  # the default run dir's
    reach = Reach([A, Line("B", f"{run}/publish", f"{run}/subscribe")], served="B")
    reach.heard("A", own=True, now=T0)
    reach.heard("B", own=False, now=T0 - 12)
    answer = {"pid": 1, "config": "c.toml", "children": {},
              "supervisor": {"pid": 1, "name": "host-2", "uptime": 5.0},
              "bus": {"forwarder": "B", "lines": reach.report(T0 + 0.4)}}
    text = table(answer)
    assert all(len(line) <= 120 for line in text.splitlines())
    assert text.split("\n\n")[1].splitlines()[1].split()[0] == "host-2"
    header, a, b = text.split("\n\n")[-1].splitlines()
    assert header.split() == ["line", "state", "forwarder", "heard_own", "heard_any", "publish",
                              "subscribe"]
    assert a.split() == ["A", "up", "elsewhere", "0.4s", "ago", "0.4s", "ago", A.publish,
                         A.subscribe]
    assert b.split() == ["B", "unreachable", "here", "never", "12s", "ago", f"{run}/publish",
                         f"{run}/subscribe"]
