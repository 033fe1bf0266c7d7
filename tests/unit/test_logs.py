"""Logging: text or one JSON object per line, extra fields as fields, the level from settings."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tracker.config import Settings
from tracker.errors import ConfigurationError
from tracker.logs import Throttled, configure_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_extra_fields_and_tracebacks(restore_root_logger):
    stream = io.StringIO()
    configure_logging(Settings(log_format="json", log_level="debug"), stream)
    log = logging.getLogger("tracker.test")

    log.debug("drained %s", "impressions_stream", extra={"stream": "impressions_stream", "entries": 1000,
                                                         "duration_ms": 12.5})
    try:
        raise ValueError("bad \"value\"\nsecond line")
    except ValueError:
        log.exception("drain failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "DEBUG" and first["logger"] == "tracker.test"
    assert first["message"] == "drained impressions_stream"
    assert (first["stream"], first["entries"], first["duration_ms"]) == ("impressions_stream", 1000, 12.5)
    assert first["ts"].endswith("Z") and isinstance(first["pid"], int)
    assert second["level"] == "ERROR" and "ValueError: bad" in second["exc"]


def test_text_lines_append_extra_fields(restore_root_logger):
    stream = io.StringIO()
    configure_logging(Settings(log_format="text"), stream)
    logging.getLogger("tracker.test").info("drained", extra={"stream": "clicks_stream", "entries": 3})
    line = stream.getvalue().strip()
    assert line.endswith("INFO tracker.test: drained stream=clicks_stream entries=3")


def test_the_level_comes_from_settings_and_reconfiguring_never_duplicates(restore_root_logger):
    stream, dramatiqs = io.StringIO(), io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(dramatiqs))  # Dramatiq's CLI did basicConfig(stream=...)
    configure_logging(Settings(log_level="WARNING"), stream)
    configure_logging(Settings(log_level="WARNING"), stream)
    log = logging.getLogger("tracker.test")
    log.info("not shown")
    log.warning("shown once")
    assert stream.getvalue().count("shown once") == 1 and "not shown" not in stream.getvalue()
    assert dramatiqs.getvalue() == ""


def test_unknown_format_or_level_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="TRACKER_LOG_FORMAT"):
        Settings(log_format="xml")
    with pytest.raises(ConfigurationError, match="TRACKER_LOG_LEVEL"):
        Settings(log_level="LOUD")
    assert Settings.from_env({"TRACKER_LOG_FORMAT": "json", "TRACKER_WORKER_METRICS_PORT": "9300"}).worker_metrics_port == 9300


def test_throttled_logs_once_per_interval_with_the_count_skipped():
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("tracker.test.throttled")
    logger.addHandler(Collect())
    logger.propagate = False
    now = [0.0]
    throttled = Throttled(logger, 10, clock=lambda: now[0])
    for _ in range(500):
        throttled.warning("refused a %s: %s", "click", "Redis unavailable")
    now[0] = 10.0
    throttled.warning("refused a %s: %s", "click", "Redis unavailable")
    assert [(r.getMessage(), r.suppressed) for r in records] == [("refused a click: Redis unavailable", 0),
                                                                 ("refused a click: Redis unavailable", 499)]
