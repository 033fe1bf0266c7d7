"""POST /v1/events, in-process: the batch contract, dedupe by event_id, and every refusal."""

import json
import time

import pytest
import redis

from tests.unit.test_web import assert_cors_json, entries, make_runtime
from tests.wsgi import call
from tracker.runtime import Runtime
from tracker.streams import ensure_groups
from tracker.web import create_app

EID = "0f8e2a4c-5b1d-4e7a-9c3b-2d6f8a1e4b70"  # what crypto.randomUUID() gives


def make_app(settings, client, sqlite_url, **changes):
    settings = settings.replace(**changes)
    ensure_groups(client, Runtime(settings).layout)
    return create_app(make_runtime(settings, client, sqlite_url))


@pytest.fixture
def app(settings, redis_client, sqlite_url):
    return make_app(settings, redis_client, sqlite_url)


def post(app, events, content_type="application/json", **kwargs):
    body = events if isinstance(events, (str, bytes)) else json.dumps(events)
    return call(app, "POST", "/v1/events", body, content_type, **kwargs)


def stored(client):
    return {"impressions": entries(client, "impressions_stream"), "clicks": entries(client, "clicks_stream")}


@pytest.mark.parametrize("content_type", ["application/json", "text/plain;charset=UTF-8"])
def test_a_batch_is_stored_in_request_order_with_client_times(app, redis_client, content_type):
    now = int(time.time())
    response = post(app, [{"type": "impression", "ad_id": 7, "ts": now - 30},
                          {"type": "click", "ad_id": "8"},
                          {"type": "impression", "ad_id": 9, "event_id": EID}], content_type)
    assert response.status == 200
    assert_cors_json(response)
    body = response.json()
    assert (body["status"], body["accepted"], body["duplicates"], body["filtered"]) == ("success", 3, 0, 0)
    assert [e["status"] for e in body["events"]] == ["stored", "stored", "stored"]
    impressions, clicks = stored(redis_client)["impressions"], stored(redis_client)["clicks"]
    assert impressions == [(body["events"][0]["stream_id"], {"ad_id": "7", "ts": str(now - 30)}),
                           (body["events"][2]["stream_id"], {"ad_id": "9", "ts": str(body["ts"])})]
    assert clicks == [(body["events"][1]["stream_id"], {"ad_id": "8", "ts": str(body["ts"])})]


def test_a_retried_event_id_is_stored_once(app, redis_client):
    batch = [{"type": "impression", "ad_id": 7, "event_id": EID}, {"type": "click", "ad_id": 7, "event_id": EID}]
    first = post(app, batch).json()
    again = post(app, batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert [e["stream_id"] for e in again["events"]] == [e["stream_id"] for e in first["events"]]
    assert [e["status"] for e in again["events"]] == ["duplicate", "duplicate"]
    assert len(stored(redis_client)["impressions"]) == 1 and len(stored(redis_client)["clicks"]) == 1


def test_the_same_event_id_twice_in_one_batch_is_stored_once(app, redis_client):
    body = post(app, [{"type": "click", "ad_id": 3, "event_id": EID}] * 2).json()
    assert [e["status"] for e in body["events"]] == ["stored", "duplicate"]
    assert body["events"][0]["stream_id"] == body["events"][1]["stream_id"]
    assert len(stored(redis_client)["clicks"]) == 1


def test_the_dedupe_window_is_the_setting(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, dedupe_window_ms=5_000, clock_skew_ms=5_000)
    post(app, [{"type": "click", "ad_id": 3, "event_id": EID}])
    ttl = fake_redis.pttl(f"{{clicks_stream}}:seen:{EID}")
    assert 0 < ttl <= 5_000


@pytest.mark.parametrize("item, field", [
    ({"ad_id": 7}, "type"),
    ({"type": "view", "ad_id": 7}, "type"),
    ({"type": ["impression"], "ad_id": 7}, "type"),
    ({"type": "impression"}, "ad_id"),
    ({"type": "impression", "ad_id": "12x"}, "ad_id"),
    ({"type": "impression", "ad_id": 1.5}, "ad_id"),
    ({"type": "impression", "ad_id": 0}, "ad_id"),
    ({"type": "impression", "ad_id": 2**31}, "ad_id"),
    ({"type": "impression", "ad_id": True}, "ad_id"),
    ({"type": "impression", "ad_id": 7, "event_id": "short"}, "event_id"),
    ({"type": "impression", "ad_id": 7, "event_id": "x" * 65}, "event_id"),
    ({"type": "impression", "ad_id": 7, "event_id": "{clicks_stream}:abcdefghijk"}, "event_id"),
    ({"type": "impression", "ad_id": 7, "event_id": "abcdefghijklmnop\n"}, "event_id"),
    ({"type": "impression", "ad_id": 7, "event_id": 1234567890123456789}, "event_id"),
    ({"type": "impression", "ad_id": 7, "ts": "soon"}, "ts"),
    ({"type": "impression", "ad_id": 7, "ts": 1.5e9}, "ts"),
    ({"type": "impression", "ad_id": 7, "ts": int(time.time() * 1000)}, "ts"),  # milliseconds
    ({"type": "impression", "ad_id": 7, "ts": int(time.time()) - 2 * 3600}, "ts"),  # beyond the skew
    ({"type": "impression", "ad_id": 7, "ts": int(time.time()) + 2 * 3600}, "ts"),
    ("impression", None),
])
def test_one_bad_item_refuses_the_whole_batch_and_names_it(app, redis_client, item, field):
    response = post(app, [{"type": "click", "ad_id": 1}, item, {"type": "impression", "ad_id": 2}])
    assert response.status == 400
    assert_cors_json(response)
    body = response.json()
    assert body["error"] == "Invalid events"
    assert len(body["items"]) == 1
    assert body["items"][0]["index"] == 1 and body["items"][0]["field"] == field and body["items"][0]["error"]
    assert stored(redis_client) == {"impressions": [], "clicks": []}


def test_every_bad_item_is_listed(app):
    response = post(app, [{"type": "click", "ad_id": 0}, {"type": "click", "ad_id": 1}, {"type": "x", "ad_id": 1}])
    assert [(i["index"], i["field"]) for i in response.json()["items"]] == [(0, "ad_id"), (2, "type")]


def test_unknown_fields_are_ignored(app, redis_client):
    response = post(app, [{"type": "impression", "ad_id": 7, "visible_ms": 1200}])
    assert response.status == 200 and len(stored(redis_client)["impressions"]) == 1


def test_a_client_time_within_the_skew_setting(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, clock_skew_ms=60_000)
    now = int(time.time())
    assert post(app, [{"type": "click", "ad_id": 1, "ts": now - 50}]).status == 200
    refused = post(app, [{"type": "click", "ad_id": 1, "ts": now - 120}])
    assert refused.status == 400 and "60 s" in refused.json()["items"][0]["error"]


@pytest.mark.parametrize("body, status, error", [
    ("[{", 400, "Malformed JSON body"),
    ('{"type": "click", "ad_id": 1}', 400, "Malformed JSON body"),
    ("[]", 400, "No events"),
    ("", 400, "Malformed JSON body"),
    (b"\xff\xfe[]", 400, "Malformed JSON body"),
])
def test_bodies_that_are_not_an_array_of_events(app, body, status, error):
    response = post(app, body)
    assert response.status == status and response.json()["error"] == error
    assert_cors_json(response)


def test_at_most_the_configured_number_of_events(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, batch_max_events=3)
    assert post(app, [{"type": "click", "ad_id": 1}] * 3).status == 200
    response = post(app, [{"type": "click", "ad_id": 1}] * 4)
    assert response.status == 400 and response.json()["error"] == "Too many events"
    assert fake_redis.xlen("clicks_stream") == 3


def test_a_hundred_events_by_default(app, redis_client):
    response = post(app, [{"type": "impression", "ad_id": n} for n in range(1, 101)])
    assert response.status == 200 and response.json()["accepted"] == 100
    assert post(app, [{"type": "impression", "ad_id": 1}] * 101).status == 400


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "application/xml", None])
def test_other_content_types_are_refused(app, content_type):
    response = post(app, [{"type": "click", "ad_id": 1}], content_type)
    assert response.status == 415 and response.json()["error"] == "Unsupported Content-Type"


def test_a_body_over_the_size_limit_is_413(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, max_body_bytes=100)
    response = post(app, [{"type": "click", "ad_id": 1}] * 10)
    assert response.status == 413 and fake_redis.xlen("clicks_stream") == 0


def test_preflight_and_wrong_methods(app):
    preflight = call(app, "OPTIONS", "/v1/events")
    assert preflight.status == 200 and preflight.body == b""
    assert_cors_json(preflight)
    wrong = call(app, "GET", "/v1/events")
    assert wrong.status == 405 and "error" in wrong.json()


def test_events_go_to_their_ads_shards(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, shards=2)
    post(app, [{"type": "impression", "ad_id": 4}, {"type": "impression", "ad_id": 5}])
    assert [f["ad_id"] for _, f in entries(fake_redis, "impressions_stream")] == ["4"]
    assert [f["ad_id"] for _, f in entries(fake_redis, "impressions_stream:1")] == ["5"]


def test_redis_down_is_a_503_with_retry_after(settings, sqlite_url):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    app = create_app(make_runtime(settings, dead, sqlite_url))
    response = post(app, [{"type": "click", "ad_id": 1, "event_id": EID}])
    assert response.status == 503 and response.header("Retry-After") == str(settings.retry_after_s)
    assert_cors_json(response)


# -- the single-event routes take an optional event_id too ----------------------------------

@pytest.mark.parametrize("method, path, body, content_type", [
    ("GET", f"/v1/clicks?ad_id=5&event_id={EID}", "", None),
    ("POST", "/track_click.php", json.dumps({"ad_id": 5, "event_id": EID}), "application/json"),
    ("POST", "/v1/clicks", f"ad_id=5&event_id={EID}", "application/x-www-form-urlencoded"),
])
def test_single_event_routes_dedupe_by_event_id(app, redis_client, method, path, body, content_type):
    first = call(app, method, path, body, content_type).json()
    again = call(app, method, path, body, content_type).json()
    assert "duplicate" not in first and again["duplicate"] is True
    assert again["stream_id"] == first["stream_id"]
    assert len(stored(redis_client)["clicks"]) == 1


@pytest.mark.parametrize("query", ["event_id=short", f"event_id={EID}&event_id={EID}", "event_id=" + "%20" * 20])
def test_single_event_routes_refuse_a_bad_event_id(app, redis_client, query):
    response = call(app, "GET", f"/v1/impressions?ad_id=5&{query}")
    assert response.status == 400 and response.json()["error"] == "Invalid event_id"
    assert stored(redis_client)["impressions"] == []
