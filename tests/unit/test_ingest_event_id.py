"""An optional event_id on the single-event routes: a client's retry of the same event is stored once.

Why it is needed: a 503 does not prove that the event was not stored (Redis may run the XADD
after the web server stopped waiting for it; see tests/faults/test_c_redis_restart.py), so a
client that retries a 503 without an event id may have its event counted twice.
"""

import pytest

from tests.unit.test_web import app, assert_cors_json, entries, layout_groups  # noqa: F401 - fixtures
from tests.wsgi import call


def test_a_retry_with_the_same_event_id_is_stored_once(app, redis_client):
    first = call_get(app, "/track_impression.php?ad_id=9&event_id=5f0c8a1e-77b2-4e1c-9a51-0d7c2f3e9b10")
    again = call_get(app, "/track_impression.php?ad_id=9&event_id=5f0c8a1e-77b2-4e1c-9a51-0d7c2f3e9b10")
    other = call_get(app, "/track_impression.php?ad_id=9&event_id=another")
    assert first.status == again.status == other.status == 200
    assert again.json()["stream_id"] == first.json()["stream_id"] != other.json()["stream_id"]
    assert list(first.json()) == ["status", "ad_id", "stream_id", "ts"]
    assert len(entries(redis_client, "impressions_stream")) == 2


def test_the_same_event_id_for_an_impression_and_a_click_are_two_events(app, redis_client):
    assert call_get(app, "/v1/impressions?ad_id=3&event_id=e1").status == 200
    assert call_get(app, "/v1/clicks?ad_id=3&event_id=e1").status == 200
    assert len(entries(redis_client, "impressions_stream")) == len(entries(redis_client, "clicks_stream")) == 1


@pytest.mark.parametrize("query", ["event_id=", "event_id=" + "a" * 65, "event_id=a%20b", "event_id=%7Bx%7D",
                                   "event_id=%C3%A9t%C3%A9", "event_id=a&event_id=a"])
def test_a_malformed_event_id_is_refused_and_nothing_stored(app, redis_client, query):
    response = call_get(app, f"/v1/clicks?ad_id=3&{query}")
    assert response.status == 400
    assert_cors_json(response)
    assert response.json()["error"] == "Invalid event_id parameter"
    assert entries(redis_client, "clicks_stream") == []


def call_get(app, path):
    return call(app, "GET", path)
