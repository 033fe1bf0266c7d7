"""The ingest routes, called in-process: the PHP system's contract, and every refusal as JSON."""

import json

import peewee
import pytest
import redis

from tests.wsgi import call
from tracker.events import CLICK, IMPRESSION
from tracker.models import connect, create_tables
from tracker.runtime import Runtime
from tracker.streams import ensure_groups
from tracker.web import create_app

CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type"}
INGEST_PATHS = ["/track_impression.php", "/track_click.php", "/v1/impressions", "/v1/clicks"]


def make_runtime(settings, client, database_url):
    runtime = Runtime(settings)
    runtime.__dict__["ingest_redis"] = client  # the test's Redis instead of a new connection
    db = connect(database_url)
    create_tables(db)
    runtime.__dict__["database"] = db
    return runtime


@pytest.fixture
def layout_groups(redis_client, settings):
    ensure_groups(redis_client, Runtime(settings).layout)


@pytest.fixture
def app(settings, redis_client, sqlite_url, layout_groups):
    return create_app(make_runtime(settings, redis_client, sqlite_url))


def entries(client, stream):
    return [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()}) for eid, fields in client.xrange(stream)]


def assert_cors_json(response):
    assert response.header("Content-Type") == "application/json"
    for name, value in CORS.items():
        assert response.header(name) == value


@pytest.mark.parametrize("path, stream", [("/track_impression.php", "impressions_stream"),
                                          ("/track_click.php", "clicks_stream"),
                                          ("/v1/impressions", "impressions_stream"), ("/v1/clicks", "clicks_stream")])
def test_get_stores_the_event_before_answering_like_the_php_system(app, redis_client, path, stream):
    response = call(app, "GET", f"{path}?ad_id=123")
    assert response.status == 200
    assert_cors_json(response)
    body = response.json()
    assert list(body) == ["status", "ad_id", "stream_id", "ts"]
    assert body["status"] == "success" and body["ad_id"] == 123 and isinstance(body["ts"], int)
    stored = entries(redis_client, stream)
    assert stored == [(body["stream_id"], {"ad_id": "123", "ts": str(body["ts"])})]
    assert response.body.startswith(b'{"status":"success","ad_id":123,"stream_id":"')  # compact, as json_encode


@pytest.mark.parametrize("body, content_type", [
    ('{"ad_id": 77}', "application/json"),
    ('{"ad_id": "77"}', "application/json; charset=utf-8"),
    ('{"ad_id": 77}', "text/plain;charset=UTF-8"),  # what sendBeacon sends
    ("ad_id=77", "application/x-www-form-urlencoded"),
])
def test_post_bodies_json_and_form(app, redis_client, body, content_type):
    response = call(app, "POST", "/track_click.php", body, content_type)
    assert response.status == 200 and response.json()["ad_id"] == 77
    assert len(entries(redis_client, "clicks_stream")) == 1


def test_post_multipart_form(app, redis_client):
    boundary = "XyZ"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="ad_id"\r\n\r\n55\r\n--{boundary}--\r\n'
    response = call(app, "POST", "/track_impression.php", body, f"multipart/form-data; boundary={boundary}")
    assert response.status == 200 and response.json()["ad_id"] == 55


def test_post_with_an_empty_body_uses_the_query_string(app, redis_client):
    response = call(app, "POST", "/v1/impressions?ad_id=9")
    assert response.status == 200 and response.json()["ad_id"] == 9


@pytest.mark.parametrize("path", INGEST_PATHS + ["/v1/stats"])
def test_options_is_an_empty_200_with_cors_headers(app, redis_client, path):
    response = call(app, "OPTIONS", path)
    assert response.status == 200 and response.body == b""
    assert_cors_json(response)


@pytest.mark.parametrize("query", ["", "ad_id=", "ad_id=0", "ad_id=-5", "ad_id=12x", "ad_id=99999999999",
                                   "ad_id=2147483648", "ad_id=1.5", "ad_id=%20", "ad_id=1&ad_id=2", "ad=1"])
def test_a_bad_id_is_a_400_with_the_php_message_and_nothing_is_stored(app, redis_client, query):
    response = call(app, "GET", f"/track_impression.php?{query}")
    assert response.status == 400
    assert_cors_json(response)
    assert response.json()["error"] == "Invalid or missing ad_id parameter"
    assert redis_client.xlen("impressions_stream") == 0


@pytest.mark.parametrize("body, content_type, status", [
    ("{not json", "application/json", 400),
    ("[1, 2]", "application/json", 400),
    ('"7"', "application/json", 400),
    ('{"ad_id": true}', "application/json", 400),
    ('{"ad_id": 1.0}', "application/json", 400),
    ('{"ad_id": null}', "application/json", 400),
    ('{"other": 1}', "application/json", 400),
    ("\xff\xfe", "application/json", 400),
    ("<ad_id>1</ad_id>", "application/xml", 415),
    ("ad_id=1", "image/png", 415),
])
def test_bad_bodies_are_4xx_json(app, redis_client, body, content_type, status):
    response = call(app, "POST", "/v1/clicks", body.encode("latin-1"), content_type)
    assert response.status == status
    assert_cors_json(response)
    assert "error" in response.json()
    assert redis_client.xlen("clicks_stream") == 0


def test_an_oversized_body_is_a_413(app, redis_client, settings):
    body = json.dumps({"ad_id": 1, "pad": "x" * settings.max_body_bytes})
    response = call(app, "POST", "/v1/clicks", body, "application/json")
    assert response.status == 413 and response.json()["error"] == "Request body too large"
    assert redis_client.xlen("clicks_stream") == 0


def test_unknown_paths_and_methods_answer_json(app):
    missing = call(app, "GET", "/nope")
    assert missing.status == 404 and missing.json() == {"error": "Not found"}
    assert_cors_json(missing)
    put = call(app, "PUT", "/track_click.php?ad_id=1")
    assert put.status == 405 and put.json()["error"] == "Method not allowed"
    head = call(app, "HEAD", "/track_click.php?ad_id=1")
    assert head.status == 405


def test_redis_down_is_a_fast_503_with_retry_after(settings, sqlite_url):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2)  # nothing listens on port 1
    app = create_app(make_runtime(settings, dead, sqlite_url))
    response = call(app, "GET", "/track_impression.php?ad_id=1")
    assert response.status == 503 and response.header("Retry-After") == str(settings.retry_after_s)
    assert_cors_json(response)
    assert "error" in response.json()


def test_redis_refusing_writes_is_a_503(settings, sqlite_url, fake_redis):
    class Full(type(fake_redis)):  # events are stored through a pipeline, which reports errors annotated
        def xadd(self, *args, **kwargs):  # a lone event without event_id is one plain XADD
            raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")

        def pipeline(self, *args, **kwargs):
            pipe = super().pipeline(*args, **kwargs)

            def execute(raise_on_error=True):
                raise redis.ResponseError("Command # 1 (XADD clicks_stream * ad_id 1) of pipeline caused error: "
                                          "OOM command not allowed when used memory > 'maxmemory'.")
            pipe.execute = execute
            return pipe
    app = create_app(make_runtime(settings, Full(), sqlite_url))
    assert call(app, "GET", "/v1/clicks?ad_id=1").status == 503
    assert call(app, "GET", "/v1/clicks?ad_id=1&event_id=retry-safe-0000001").status == 503  # the pipeline path


def test_stats_reports_counts_and_ctr(app, settings, sqlite_url):
    from tracker.models import AdDailyClicks, AdDailyImpressions
    db = peewee.SqliteDatabase(sqlite_url.removeprefix("sqlite:///"))
    AdDailyImpressions.insert(ad_id=7, date="2026-11-20", impressions=40).execute(db)
    AdDailyClicks.insert(ad_id=7, date="2026-11-20", clicks=2).execute(db)
    AdDailyImpressions.insert(ad_id=8, date="2026-11-21", impressions=10).execute(db)
    response = call(app, "GET", "/v1/stats?ad_id=7&from=2026-11-19&to=2026-11-21")
    assert response.status == 200
    assert_cors_json(response)
    report = response.json()
    assert report["totals"] == {"impressions": 40, "clicks": 2, "ctr": 0.05}
    assert report["ads"] == [{"ad_id": 7, "impressions": 40, "clicks": 2, "ctr": 0.05, "days": [
        {"date": "2026-11-20", "impressions": 40, "clicks": 2, "ctr": 0.05}]}]
    assert [d["date"] for d in report["days"]] == ["2026-11-19", "2026-11-20", "2026-11-21"]
    everything = call(app, "GET", "/v1/stats?from=2026-11-19&to=2026-11-21").json()
    assert [a["ad_id"] for a in everything["ads"]] == [7, 8] and everything["totals"]["impressions"] == 50


@pytest.mark.parametrize("query", ["from=yesterday", "to=2026-13-01", "from=2026-11-20&to=2026-11-01",
                                   "from=2020-01-01&to=2026-01-01", "ad_id=x", "limit=0", "limit=abc"])
def test_stats_refuses_bad_queries_with_400(app, query):
    response = call(app, "GET", f"/v1/stats?{query}")
    assert response.status == 400 and "error" in response.json()


def test_the_demo_page_and_tracker_js_are_served(app):
    page = call(app, "GET", "/")
    assert page.status == 200 and b'data-ad-id="1"' in page.body and b"/tracker.js" in page.body
    script = call(app, "GET", "/tracker.js")
    assert script.status == 200 and script.header("Content-Type").startswith("application/javascript")
    assert b"IntersectionObserver" in script.body
