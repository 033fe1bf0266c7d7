"""Metrics: the counting API, the exposition of the web app, the drain records."""

from __future__ import annotations

import pytest
import redis
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.wsgi import call
from tracker.drainer import DrainReport
from tracker.drainlog import DrainLog, last_drain_of
from tracker.embedded import free_port
from tracker.events import CLICK, IMPRESSION
from tracker.metrics import Metrics, exposition
from tracker.models import create_tables
from tracker.runtime import Runtime
from tracker.streams import Layout, NewEvent, Producer, ensure_groups
from tracker.web import create_app

TS = 1_795_500_000


def samples(text: str | bytes) -> dict:
    """{(sample name, frozenset(labels)): value} of an exposition, parsed by prometheus_client."""
    if isinstance(text, bytes):
        text = text.decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(parsed: dict, name: str, **labels) -> float | None:
    return parsed.get((name, frozenset(labels.items())))


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_the_counting_api_counts_per_kind_and_reason(metrics):
    metrics.accepted(IMPRESSION)
    metrics.accepted(IMPRESSION, 2)
    metrics.rejected(CLICK, 400, "Invalid or missing ad_id parameter")
    metrics.rejected(CLICK, 400, "Invalid or missing ad_id parameter")
    metrics.filtered(IMPRESSION, "bot")
    metrics.filtered(IMPRESSION, "Prefetch", 3)
    metrics.deduplicated(CLICK, 4)

    parsed = samples(exposition(metrics))
    assert value(parsed, "tracker_events_accepted_total", kind="impression") == 3
    assert value(parsed, "tracker_events_rejected_total", kind="click", status="400",
                 reason="invalid_or_missing_ad_id_parameter") == 2
    assert value(parsed, "tracker_events_filtered_total", kind="impression", reason="bot") == 1
    assert value(parsed, "tracker_events_filtered_total", kind="impression", reason="prefetch") == 3
    assert value(parsed, "tracker_events_deduplicated_total", kind="click") == 4


def test_stored_counts_new_events_as_accepted_and_retries_as_deduplicated(metrics, redis_client):
    # Given events stored with event ids, one of them twice (a client's retry)
    layout = Layout()
    ensure_groups(redis_client, layout)
    producer = Producer(redis_client, layout)
    events = [NewEvent(IMPRESSION, 1, TS, "a"), NewEvent(IMPRESSION, 2, TS, "b"), NewEvent(CLICK, 1, TS, "c")]
    metrics.stored([e.kind for e in events], producer.store(events))
    retry = [NewEvent(IMPRESSION, 1, TS, "a")]
    # When the retry is stored and counted
    metrics.stored([e.kind for e in retry], producer.store(retry))
    # Then
    parsed = samples(exposition(metrics))
    assert value(parsed, "tracker_events_accepted_total", kind="impression") == 2
    assert value(parsed, "tracker_events_accepted_total", kind="click") == 1
    assert value(parsed, "tracker_events_deduplicated_total", kind="impression") == 1
    assert redis_client.xlen("impressions_stream") == 2


def make_app(settings, client, sqlite_url, metrics):
    runtime = Runtime(settings.replace(database_url=sqlite_url))
    runtime.__dict__.update(ingest_redis=client, probe_redis=client, metrics=metrics)
    create_tables(runtime.database)
    ensure_groups(client, runtime.layout)
    return create_app(runtime)


def test_metrics_page_counts_the_requests_it_served(settings, redis_client, sqlite_url, metrics):
    app = make_app(settings, redis_client, sqlite_url, metrics)
    for ad_id in (1, 2, 3):
        assert call(app, "GET", f"/track_impression.php?ad_id={ad_id}").status == 200
    assert call(app, "POST", "/v1/clicks", "ad_id=9", "application/x-www-form-urlencoded").status == 200
    assert call(app, "GET", "/v1/clicks?ad_id=12x").status == 400
    assert call(app, "POST", "/v1/clicks", "<xml/>", "application/xml").status == 415

    response = call(app, "GET", "/metrics")
    assert response.status == 200
    assert response.header("Content-Type").startswith("text/plain; version=0.0.4")
    parsed = samples(response.body)
    assert value(parsed, "tracker_events_accepted_total", kind="impression") == 3
    assert value(parsed, "tracker_events_accepted_total", kind="click") == 1
    assert value(parsed, "tracker_events_rejected_total", kind="click", status="400",
                 reason="invalid_or_missing_ad_id_parameter") == 1
    assert value(parsed, "tracker_events_rejected_total", kind="click", status="415",
                 reason="unsupported_content_type") == 1
    assert value(parsed, "tracker_ingest_duration_seconds_count", endpoint="/track_impression.php") == 3
    assert value(parsed, "tracker_ingest_duration_seconds_count", endpoint="/v1/clicks") == 3
    assert value(parsed, "tracker_ingest_duration_seconds_bucket", endpoint="/track_impression.php", le="+Inf") == 3
    # the per-shard figures, read from Redis and the database at scrape time
    assert value(parsed, "tracker_status_up") == 1
    assert value(parsed, "tracker_stream_length", stream="impressions_stream", kind="impression") == 3
    assert value(parsed, "tracker_stream_length", stream="clicks_stream", kind="click") == 1


def test_a_redis_outage_is_counted_as_503_rejections(settings, sqlite_url, metrics):
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    runtime = Runtime(settings.replace(database_url=sqlite_url))
    runtime.__dict__.update(ingest_redis=dead, probe_redis=dead, metrics=metrics)
    app = create_app(runtime)
    assert call(app, "GET", "/v1/impressions?ad_id=1").status == 503
    parsed = samples(call(app, "GET", "/metrics").body)
    assert value(parsed, "tracker_events_rejected_total", kind="impression", status="503",
                 reason="event_store_unavailable_retry_later") == 1
    assert value(parsed, "tracker_status_up") == 0
    assert value(parsed, "tracker_stream_length", stream="impressions_stream", kind="impression") is None


def test_drain_log_records_metrics_and_the_last_drain_mark(redis_client, metrics):
    shard = Layout().shards(IMPRESSION)[0]
    drain_log = DrainLog(redis_client, metrics, clock=lambda: 1_795_500_000.5)
    report = DrainReport(shard.key, reads=3, entries=1500, applied=1490, skipped=5, dead=5, commits=2,
                         batch_sizes=[1000, 500], batch_seconds=[0.02, 0.01])

    drain_log.finished(shard, report, 1.25)

    parsed = samples(exposition(metrics))
    assert value(parsed, "tracker_drains_total", stream=shard.key, result="ok") == 1
    assert value(parsed, "tracker_drain_duration_seconds_sum", stream=shard.key) == 1.25
    assert value(parsed, "tracker_drain_batch_size_sum", stream=shard.key) == 1500
    assert value(parsed, "tracker_drain_batch_size_count", stream=shard.key) == 2
    assert value(parsed, "tracker_drain_batch_size_bucket", stream=shard.key, le="500.0") == 1
    assert value(parsed, "tracker_drain_batch_duration_seconds_count", stream=shard.key) == 2
    assert value(parsed, "tracker_drained_events_total", stream=shard.key, outcome="applied") == 1490
    assert value(parsed, "tracker_drained_events_total", stream=shard.key, outcome="skipped") == 5
    assert value(parsed, "tracker_drained_events_total", stream=shard.key, outcome="dead") == 5
    mark = last_drain_of(redis_client.hgetall(shard.last_drain_key))
    assert (mark.ended_at_ms, mark.result, mark.entries, mark.duration_ms, mark.error) == (1_795_500_000_500, "ok", 1500, 1250, None)
    assert not mark.running


def test_drain_log_records_a_failure_and_ignores_a_busy_shard(redis_client, metrics):
    shard = Layout().shards(CLICK)[0]
    drain_log = DrainLog(redis_client, metrics)

    drain_log.finished(shard, DrainReport(shard.key, busy=True), 0.001)
    assert redis_client.hgetall(shard.last_drain_key) == {}
    drain_log.started(shard)
    assert last_drain_of(redis_client.hgetall(shard.last_drain_key)).running
    drain_log.failed(shard, 0.5, RuntimeError("database unavailable: (2003, \"Can't connect\")"))

    mark = last_drain_of(redis_client.hgetall(shard.last_drain_key))
    assert mark.result == "error" and mark.error.startswith("RuntimeError: database unavailable")
    assert not mark.running and mark.ended_at_ms >= mark.started_at_ms > 0
    parsed = samples(exposition(metrics))
    assert value(parsed, "tracker_drains_total", stream=shard.key, result="busy") == 1
    assert value(parsed, "tracker_drains_total", stream=shard.key, result="error") == 1
    assert value(parsed, "tracker_drain_duration_seconds_count", stream=shard.key) == 1  # the busy one is not timed
