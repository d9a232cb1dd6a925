"""handlers.common, the parts that need no connection: backoff and client settings.
(The reconnecting client itself is exercised end to end in test_alpaca_live.py.)"""

from __future__ import annotations

import pytest

from handlers.common import Backoff, ClientSettings


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
    settings = ClientSettings.from_settings({"stale_after": 0, "backoff_max": 5}, "wss://x/v2/iex")
    assert settings == ClientSettings(url="wss://x/v2/iex", stale_after=0.0, backoff_max=5.0)
    assert ClientSettings.from_settings({"url": "ws://127.0.0.1:1/v2/test"}, "wss://x").url \
        == "ws://127.0.0.1:1/v2/test"


@pytest.mark.parametrize("bad", [{"url": "http://x"}, {"stale_after": -1}, {"ping_timeout": "5"},
                                 {"backoff_min": True}, {"backoff_min": 3, "backoff_max": 1},
                                 {"backoff_min": 0}])
def test_client_settings_errors_name_the_key(bad):
    with pytest.raises(ValueError) as error:
        ClientSettings.from_settings(bad, "wss://x")
    assert any(key in str(error.value) for key in bad)
