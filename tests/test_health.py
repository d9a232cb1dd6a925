"""supervisor.health, pure: rates, latency quantiles, restarts, feeds matched to processes,
last errors and resyncs, from heartbeats and status events with made-up times; and
supervisor.watch's way from raw bus messages to it."""

import math

import pytest

from tickmesh.bus.events import BookSnapshot, Heartbeat, Sample, Status, encode
from tickmesh.bus.subscriber import RawMessage
from tickmesh.bus.topics import topic
from tickmesh.runtime.metrics import EVENT_LATENCY, SCHEMA, Histogram
from tickmesh.supervisor.health import MAX_EPOCHS, SILENT_AFTER, SUPERSEDED_AFTER, Health, quantile
from tickmesh.supervisor.watch import observe

pytestmark = pytest.mark.timeout(10)

T0 = 1_800_000_000.0  # unix seconds
LATENCY_BUCKETS = SCHEMA[EVENT_LATENCY].buckets


def beat(name: str, at: float, *, epoch: int = 1, uptime: float = 0.0, published: float = 0,
         latency: Histogram | None = None, **counters: float) -> tuple[Heartbeat, float]:
    """A heartbeat of `name` as it arrives at `at`, with these counter values."""
    samples = [Sample("uptime_seconds", "gauge", {}, uptime),
               Sample("events_published", "counter", {"kind": "trade", "provider": "feed"},
                      published),
               Sample("events_published", "counter", {"kind": "heartbeat", "provider": name}, 7),
               Sample("events_published", "counter", {"kind": "status", "provider": "feed"}, 3)]
    for key, value in counters.items():
        name_, _, label = key.partition("__")
        labels = {SCHEMA[name_].labels[0]: label} if label else {}
        samples.append(Sample(name_, "counter", labels, value))
    if latency is not None:
        samples += latency.samples(EVENT_LATENCY)
    return Heartbeat(provider=name, ts_event=0, ts_recv=0, pid=1, epoch=epoch,
                     metrics=samples), at


def status(state: str, at: float, *, provider: str = "alpaca", epoch: int = 1, symbol: str = "",
           code: int = 0, message: str = "") -> tuple[Status, float]:
    ns = int(at * 1e9)
    return Status(provider=provider, symbol=symbol, ts_event=ns, ts_recv=ns, epoch=epoch,
                  state=state, code=code, message=message), at


def fed(*events: tuple) -> Health:
    health = Health()
    for event, at in events:
        (health.heartbeat if isinstance(event, Heartbeat) else health.status)(event, at)
    return health


def test_nothing_is_known_of_a_process_before_its_first_heartbeat():
    assert Health().report("alpaca", T0) is None


def test_events_per_second_over_the_last_five_seconds_of_heartbeats():
    # 10 events/s for 5 s, then 50/s: five seconds later, the rate is the new one
    counts = [10 * s if s <= 5 else 50 + 50 * (s - 5) for s in range(11)]
    health = fed(*(beat("h", T0 + s, uptime=s, published=n) for s, n in enumerate(counts)))
    report = health.report("h", T0 + 10.25)
    assert report["events_per_second"] == 50.0
    assert report["events_published"] == 300  # heartbeats and status not counted
    assert report["heartbeat_age"] == 0.25
    assert report["last_event_age"] == 0.25


def test_a_first_heartbeat_rates_from_the_process_start():
    health = fed(beat("h", T0, uptime=2.0, published=40))
    assert health.report("h", T0)["events_per_second"] == 20.0


def test_the_last_event_age_grows_while_the_count_does_not():
    health = fed(*(beat("h", T0 + s, uptime=1 + s, published=5) for s in range(7)))
    report = health.report("h", T0 + 6.5)
    assert report["last_event_age"] == 6.5 and report["events_per_second"] == 0.0
    assert fed(beat("quiet", T0, uptime=1)).report("quiet", T0)["last_event_age"] is None


def test_consumers_report_what_they_received_and_every_kind_of_gap():
    health = fed(beat("books", T0, uptime=1, events_received=100, bus_gaps=2),
                 beat("books", T0 + 5, uptime=6, events_received=600, bus_gaps=3,
                      resyncs__trade_gap=4, resyncs__gap=1, trades_missed=5, reconnects=6))
    report = health.report("books", T0 + 5)
    assert report["events_received"] == 600 and report["events_received_per_second"] == 100.0
    assert report["gaps"] == 3 + 4 + 1 + 5 and report["reconnects"] == 6
    handler = fed(beat("h", T0, uptime=1)).report("h", T0)
    assert handler["events_received"] is None and handler["events_received_per_second"] is None


@pytest.mark.parametrize("buckets, q, expected", [
    ([(0.1, 0), (0.2, 10), (math.inf, 10)], 0.5, 0.15),       # within the second bucket
    ([(0.1, 10), (0.2, 10), (math.inf, 10)], 0.5, 0.05),      # the first starts at 0
    ([(0.1, 0), (1.0, 100), (math.inf, 100)], 0.99, 0.991),
    ([(0.1, 0), (1.0, 0), (math.inf, 5)], 0.5, 1.0),          # +Inf: the highest finite bound
    ([(0.1, 0), (math.inf, 0)], 0.5, None),                   # nothing observed
])
def test_quantiles_interpolate_within_buckets_as_prometheus_does(buckets, q, expected):
    assert quantile(q, buckets) == pytest.approx(expected)


def test_latency_quantiles_cover_the_last_ten_seconds_only():
    latency = Histogram(LATENCY_BUCKETS)
    for _ in range(100):
        latency.observe(2.0)  # slow, long ago
    events = [beat("h", T0, uptime=60, latency=latency)]
    for _ in range(90):
        latency.observe(0.0003)  # in (0.00025, 0.0005]
    for _ in range(10):
        latency.observe(0.03)  # in (0.025, 0.05]
    events += [beat("h", T0 + s, uptime=60 + s, latency=latency) for s in (10, 11)]
    report = fed(*events).report("h", T0 + 11)
    assert report["latency_p50"] == pytest.approx(0.00025 + 0.00025 * 50 / 90, abs=1e-6)
    assert report["latency_p99"] == pytest.approx(0.025 + 0.025 * 9 / 10, abs=1e-6)
    assert fed(beat("quiet", T0, uptime=1)).report("quiet", T0)["latency_p50"] is None


def test_a_new_epoch_is_a_restart_and_an_older_one_is_ignored():
    health = fed(beat("h", T0, epoch=1, uptime=100, published=1000),
                 beat("h", T0 + 1, epoch=1, uptime=101, published=1100),
                 status("subscribed", T0 + 1, epoch=1),
                 beat("h", T0 + 2, epoch=2, uptime=0.5, published=5))
    report = health.report("h", T0 + 2)
    assert report["events_published"] == 5 and report["events_per_second"] == 10.0
    assert report["feed"] is None  # the connection of its previous life is gone
    health.heartbeat(*beat("h", T0 + 3, epoch=1, uptime=102, published=1200))  # a replay
    assert health.report("h", T0 + 3)["events_published"] == 5


def test_an_older_epoch_is_a_new_life_once_the_current_one_went_silent():
    # the clock was set back between two lives: the new epoch is the smaller one
    health = fed(beat("h", T0, epoch=50, uptime=100, published=1000),
                 beat("h", T0 + SUPERSEDED_AFTER + 1, epoch=40, uptime=1, published=3))
    assert health.report("h", T0 + SUPERSEDED_AFTER + 1)["events_published"] == 3


def test_connections_of_no_process_are_forgotten_first():
    health = fed(beat("h", T0, epoch=1), status("subscribed", T0, epoch=1))
    for epoch in range(100, 100 + MAX_EPOCHS + 10):  # a replay's, say
        health.status(*status("connecting", T0, epoch=epoch))
    assert health.report("h", T0)["feed"]["state"] == "subscribed"


def test_a_status_belongs_to_the_process_whose_heartbeats_share_its_epoch():
    # two handlers of one provider: told apart by their publisher epochs
    health = fed(status("connecting", T0, epoch=11),  # before its first heartbeat: kept
                 beat("feed-a", T0 + 0.5, epoch=11), beat("feed-b", T0 + 0.5, epoch=22),
                 status("subscribed", T0 + 1, epoch=11),
                 status("connecting", T0 + 1, epoch=22),
                 status("disconnected", T0 + 2, epoch=22, message="refused"))
    a, b = health.report("feed-a", T0 + 3)["feed"], health.report("feed-b", T0 + 3)["feed"]
    assert (a["provider"], a["state"], a["connected"], a["since"]) == ("alpaca", "subscribed",
                                                                       True, T0 + 1)
    assert (b["provider"], b["state"], b["connected"]) == ("alpaca", "disconnected", False)
    assert health.report("other", T0 + 3) is None


@pytest.mark.parametrize("state, connected", [
    ("connecting", False), ("connected", True), ("authenticated", True), ("subscribed", True),
    ("disconnected", False), ("error", False)])
def test_connected_only_while_connected_authenticated_or_subscribed(state, connected):
    health = fed(beat("h", T0), status(state, T0))
    assert health.report("h", T0)["feed"]["connected"] is connected


def test_the_last_error_is_kept_with_its_time():
    health = fed(beat("h", T0),
                 status("disconnected", T0 + 1),  # no code, no message: not an error to tell
                 status("error", T0 + 2, code=406, message="connection limit exceeded"),
                 status("disconnected", T0 + 3, message="closed by the server"),
                 status("connecting", T0 + 4), status("subscribed", T0 + 5),
                 beat("h", T0 + 5, uptime=5))
    feed = health.report("h", T0 + 6)["feed"]
    assert feed["last_error"] == {"code": 0, "message": "closed by the server", "at": T0 + 3}
    assert (feed["state"], feed["since"]) == ("subscribed", T0 + 5)


def test_a_symbol_is_resyncing_until_its_next_snapshot():
    health = fed(beat("h", T0), status("subscribed", T0),
                 status("resyncing", T0 + 1, symbol="BTC-USD", message="trade_gap"),
                 status("resyncing", T0 + 1, symbol="ETH-USD", message="trade_gap"))
    assert health.report("h", T0 + 1)["feed"]["resyncing"] == ["BTC-USD", "ETH-USD"]
    health.snapshot("alpaca", "BTC-USD", epoch=2)  # another publisher's snapshot: not this one
    health.snapshot("alpaca", "ETH-USD", epoch=1)
    feed = health.report("h", T0 + 2)["feed"]
    assert feed["resyncing"] == ["BTC-USD"] and feed["state"] == "subscribed"


def test_the_supervisor_s_bus_view_feeds_health_from_raw_messages():
    health = Health()

    def arrive(event, at: float) -> None:
        event.epoch, event.seq = 9, 1
        raw = RawMessage(topic(event.__struct_config__.tag, event.provider, event.symbol),
                         encode(event), event.epoch, event.seq)
        observe(health, raw, at)

    arrive(beat("cb", T0, epoch=9)[0], T0)
    arrive(status("resyncing", T0, provider="coinbase", epoch=9, symbol="BTC-USD")[0], T0)
    assert health.report("cb", T0)["feed"]["resyncing"] == ["BTC-USD"]
    arrive(BookSnapshot(provider="coinbase", symbol="BTC-USD", ts_event=0, ts_recv=0,
                        bids=[(1.0, 1.0)], asks=[(2.0, 1.0)]), T0 + 1)
    observe(health, RawMessage(b"status.coinbase.|", b"\xc1 not msgpack", 9, 2), T0 + 1)
    assert health.report("cb", T0 + 1)["feed"]["resyncing"] == []


# --- a stopped or silent process: no stale rate (issue 16) ----------------------------------

def flowing(name: str = "h", epoch: int = 1, seconds: int = 5) -> list[tuple]:
    """`name` publishing 70 events/s for `seconds` s, its feed subscribed."""
    return [status("subscribed", T0, epoch=epoch),
            status("resyncing", T0, epoch=epoch, symbol="BTC-USD"),
            *(beat(name, T0 + s, epoch=epoch, uptime=1 + s, published=70 * (1 + s))
              for s in range(seconds + 1))]


def final(name: str, at: float, epoch: int = 1, published: float = 0) -> tuple[Heartbeat, float]:
    heartbeat, _ = beat(name, at, epoch=epoch, uptime=at - T0 + 1, published=published)
    heartbeat.final = True
    return heartbeat, at


def test_a_process_that_sent_its_final_heartbeat_is_stopped_with_no_rate():
    health = fed(*flowing(), final("h", T0 + 5.5, published=420))
    report = health.report("h", T0 + 25)
    assert report["feed"]["state"] == "stopped" and report["feed"]["connected"] is False
    assert report["feed"]["since"] == T0 + 5.5 and report["feed"]["resyncing"] == []
    assert report["events_per_second"] == 0.0
    assert report["latency_p50"] is None and report["latency_p99"] is None
    assert report["events_published"] == 420  # what it did in its life stays told
    assert health.feed("h").connected is False  # Prometheus' tickmesh_connected too


def test_a_process_silent_for_more_than_3_s_is_silent_with_no_rate():
    health = fed(*flowing())
    assert health.report("h", T0 + 5 + SILENT_AFTER)["feed"]["state"] == "subscribed"
    report = health.report("h", T0 + 5 + SILENT_AFTER + 0.1)
    assert (report["feed"]["state"], report["feed"]["since"]) == ("silent", T0 + 5)
    assert report["feed"]["connected"] is False and report["events_per_second"] == 0.0


def test_a_silent_consumer_takes_nothing_in_either():
    health = fed(beat("books", T0, uptime=1, events_received=100),
                 beat("books", T0 + 1, uptime=2, events_received=200))
    assert health.report("books", T0 + 1)["events_received_per_second"] == 100.0
    assert health.report("books", T0 + 10)["events_received_per_second"] == 0.0
    assert fed(beat("h", T0, uptime=1)).report("h", T0 + 10)["events_received_per_second"] is None


def test_a_fresh_epoch_of_the_same_process_is_back_to_its_real_state():
    health = fed(*flowing(), final("h", T0 + 5.5, published=420),
                 status("connecting", T0 + 20, epoch=2),
                 beat("h", T0 + 20, epoch=2, uptime=1, published=0),
                 status("subscribed", T0 + 21, epoch=2),
                 beat("h", T0 + 21, epoch=2, uptime=2, published=30))
    report = health.report("h", T0 + 21)
    assert (report["feed"]["state"], report["feed"]["connected"]) == ("subscribed", True)
    assert report["events_per_second"] == 15.0
    health.heartbeat(*final("h", T0 + 22, epoch=1))  # an earlier life's, replayed: ignored
    assert health.report("h", T0 + 22)["feed"]["state"] == "subscribed"


def test_a_process_the_supervisor_saw_exit_is_stopped_without_its_final_heartbeat():
    health = fed(*flowing())
    health.ended("h", T0 + 5.2)  # SIGKILLed: no final heartbeat
    feed = health.report("h", T0 + 6)["feed"]
    assert (feed["state"], feed["since"]) == ("stopped", T0 + 5.2)
    health.ended("nobody", T0 + 6)  # never heartbeated: nothing to tell
    assert health.report("nobody", T0 + 6) is None


def test_the_forwarders_out_and_in_per_second_are_the_messages_it_forwarded():
    # it publishes no events of its own (its heartbeats are not counted): 540 messages/s through
    health = fed(*(beat("forwarder", T0 + s, uptime=1 + s, published=0,
                        forwarder_messages_in=540 * (1 + s), forwarder_messages_out=540 * (1 + s))
                   for s in range(6)))
    report = health.report("forwarder", T0 + 5)
    assert report["events_per_second"] == 540.0  # out/s
    assert report["events_received_per_second"] == 540.0  # in/s
    assert report["events_published"] == 540 * 6
