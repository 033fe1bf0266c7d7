"""The publisher-facing settings: defaults, environment names, and what is refused at start."""

import pytest

from tracker.config import Settings
from tracker.errors import ConfigurationError


def test_defaults():
    settings = Settings()
    assert (settings.batch_max_events, settings.dedupe_window_ms, settings.clock_skew_ms) == (100, 86_400_000, 3_600_000)
    assert settings.bot_filter == "crawlers" and settings.rate_limit == 0 and settings.trusted_networks == ()


def test_from_the_environment():
    settings = Settings.from_env({"TRACKER_BATCH_MAX_EVENTS": "20", "TRACKER_RATE_LIMIT": "600",
                                  "TRACKER_IP_HASH_KEY": "k" * 32, "TRACKER_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
                                  "TRACKER_CLICK_SECRET": "s" * 32, "TRACKER_BOT_FILTER": "all"})
    assert settings.batch_max_events == 20 and settings.rate_limit == 600 and settings.bot_filter == "all"
    assert [str(n) for n in settings.trusted_networks] == ["10.0.0.0/8", "127.0.0.1/32"]


def test_secrets_stay_out_of_the_settings_repr():
    text = repr(Settings(click_secret="c" * 20, link_api_token="t" * 20, rate_limit=1, ip_hash_key="i" * 20))
    assert "c" * 20 not in text and "t" * 20 not in text and "i" * 20 not in text


@pytest.mark.parametrize("changes, message", [
    ({"rate_limit": 10}, "TRACKER_IP_HASH_KEY"),
    ({"rate_limit": -1}, "TRACKER_RATE_LIMIT"),
    ({"trusted_proxies": "10.0.0.0/33"}, "TRACKER_TRUSTED_PROXIES"),
    ({"trusted_proxies": "proxy.internal"}, "TRACKER_TRUSTED_PROXIES"),
    ({"clock_skew_ms": 2 * 86_400_000}, "TRACKER_CLOCK_SKEW_MS"),
    ({"clock_skew_ms": -1}, "TRACKER_CLOCK_SKEW_MS"),
    ({"bot_filter": "yes"}, "TRACKER_BOT_FILTER"),
    ({"batch_max_events": 0}, "TRACKER_BATCH_MAX_EVENTS"),
    ({"dedupe_window_ms": 0}, "TRACKER_DEDUPE_WINDOW_MS"),
    ({"click_secret": "short"}, "TRACKER_CLICK_SECRET"),
    ({"link_api_token": "short"}, "TRACKER_LINK_API_TOKEN"),
])
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(ConfigurationError, match=message):
        Settings(**changes)
