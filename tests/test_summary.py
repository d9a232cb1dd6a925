"""The supervisor's "system" line: the system's shape from its status answer."""

from tickmesh.supervisor.summary import summary


def child(state: str, health: dict | None = None) -> dict:
    return {"state": state, "pid": 1, "health": health}


def feed(state: str, rate: float) -> dict:
    return {"events_per_second": rate, "events_received_per_second": None,
            "feed": {"provider": "x", "state": state}}


def test_the_line_names_feeds_consumers_and_what_is_not_running():
    status = {"children": {
        "forwarder": child("running"),
        "alpaca": child("running", feed("subscribed", 20.04)),
        "polygon": child("backoff", feed("disconnected", 0.0)),
        "books": child("running", {"events_per_second": 3.0, "feed": None,
                                   "events_received_per_second": 150.4}),
        "idle": child("running", {"events_per_second": 0.0, "feed": None,
                                  "events_received_per_second": 0.0}),
    }}
    assert summary(status) == {
        "running": "4 of 5 processes",
        "not_running": "polygon backoff",
        "feeds": "alpaca subscribed 20/s, polygon disconnected 0/s",
        "consumers_in": "books 150/s",
    }


def test_a_system_before_any_heartbeat_says_only_what_runs():
    status = {"children": {"forwarder": child("running"), "alpaca": child("starting")}}
    assert summary(status) == {"running": "1 of 2 processes", "not_running": "alpaca starting"}


def test_a_stopped_or_silent_feed_is_said_so_without_a_rate():
    status = {"children": {
        "alpaca": child("running", feed("subscribed", 20.0)),
        "coinbase": child("stopped", feed("stopped", 0.0)),
        "ib": child("running", feed("silent", 0.0)),
    }}
    assert summary(status) == {
        "running": "2 of 3 processes",
        "not_running": "coinbase stopped",
        "feeds": "alpaca subscribed 20/s, coinbase stopped, ib silent",
    }


def test_a_child_not_started_yet_is_starting_not_stopped():
    status = {"children": {"forwarder": child("running"), "alpaca": child("stopped"),
                           "books": child("stopped")}}
    assert summary(status, not_started=["alpaca"]) == {
        "running": "1 of 3 processes", "not_running": "alpaca starting, books stopped"}
