"""Settings from the environment, including the PHP system's variables."""

from pathlib import Path

import pytest

from tracker.config import Settings
from tracker.errors import ConfigurationError


def test_defaults_run_on_a_laptop():
    settings = Settings.from_env({})
    assert settings.redis_url is None and settings.database_url is None
    assert settings.shards == 1 and settings.batch_size == 5000 and settings.timezone == "UTC"
    assert settings.effective_database_url.startswith("sqlite:///") and settings.effective_database_url.endswith(
        "var/tracker.db")


def test_tracker_variables_are_read_and_typed():
    settings = Settings.from_env({"TRACKER_SHARDS": "4", "TRACKER_DATA_DIR": "/tmp/x", "TRACKER_TIMEZONE": "Europe/Paris",
                                  "TRACKER_BATCH_SIZE": "5000"})
    assert settings.shards == 4 and settings.data_dir == Path("/tmp/x") and settings.batch_size == 5000
    assert settings.tz.key == "Europe/Paris"


def test_legacy_php_variables_still_work():
    settings = Settings.from_env({"REDIS_HOST": "redis.internal", "REDIS_PORT": "6380", "DB_HOST": "db.internal",
                                  "DB_USER": "tracker", "DB_PASS": "p@ss:word", "DB_NAME": "ads"})
    assert settings.redis_url == "redis://redis.internal:6380/0"
    assert settings.database_url == "mysql://tracker:p%40ss%3Aword@db.internal/ads"


def test_contradicting_redis_settings_are_an_error_not_a_guess():
    with pytest.raises(ConfigurationError):
        Settings.from_env({"REDIS_URL": "redis://a:6379/0", "REDIS_HOST": "b"})
    with pytest.raises(ConfigurationError):
        Settings.from_env({"DATABASE_URL": "mysql://x@a/db", "DB_HOST": "b"})


@pytest.mark.parametrize("env", [
    {"TRACKER_SHARDS": "0"}, {"TRACKER_SHARDS": "many"}, {"TRACKER_TIMEZONE": "Mars/Olympus"},
    {"TRACKER_NAMESPACE": "{x}"}, {"TRACKER_BATCH_SIZE": "-1"},
])
def test_bad_values_are_refused_with_the_variable_named(env):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert any(name.split("_", 1)[1] in str(caught.value).upper() for name in env) or "timezone" in str(
        caught.value) or "NAMESPACE" in str(caught.value)
