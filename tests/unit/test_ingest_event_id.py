"""The event_id of a single-event POST may sit in its URL beside a JSON or form body.

A client that retries a 503 (which may have stored the event: tests/faults/test_c_redis_restart.py)
relies on its event_id wherever it put it. An event_id in the URL of a POST with a body was
ignored, so every such retry was stored, and counted, a second time.
"""

import json

import pytest

from tests.unit.test_web import app, assert_cors_json, entries, layout_groups  # noqa: F401 - fixtures
from tests.wsgi import call

EID = "0f8e2a4c-5b1d-4e7a-9c3b-2d6f8a1e4b70"


@pytest.mark.parametrize("body, content_type", [(json.dumps({"ad_id": 5}), "application/json"),
                                                (json.dumps({"ad_id": 5}), "text/plain"),
                                                ("ad_id=5", "application/x-www-form-urlencoded")])
def test_an_event_id_in_the_url_of_a_post_with_a_body_dedupes_its_retry(app, redis_client, body, content_type):
    first = call(app, "POST", f"/v1/clicks?event_id={EID}", body, content_type)
    retry = call(app, "POST", f"/v1/clicks?event_id={EID}", body, content_type)
    assert first.status == retry.status == 200
    assert retry.json()["stream_id"] == first.json()["stream_id"] and retry.json()["duplicate"] is True
    assert len(entries(redis_client, "clicks_stream")) == 1


def test_the_same_event_id_in_the_url_and_the_body_is_one_id(app, redis_client):
    body = json.dumps({"ad_id": 5, "event_id": EID})
    assert call(app, "POST", f"/v1/impressions?event_id={EID}", body, "application/json").status == 200
    assert call(app, "POST", f"/v1/impressions?event_id={EID}", body, "application/json").json()["duplicate"]
    assert len(entries(redis_client, "impressions_stream")) == 1


@pytest.mark.parametrize("body_event_id", [EID, ["a", "b"], {"x": 1}, 17])
def test_two_different_event_ids_for_one_event_are_refused(app, redis_client, body_event_id):
    body = json.dumps({"ad_id": 5, "event_id": body_event_id})
    response = call(app, "POST", "/v1/impressions?event_id=another-event-id-0001", body, "application/json")
    assert response.status == 400 and "more than once" in response.json()["detail"]
    assert_cors_json(response)
    assert entries(redis_client, "impressions_stream") == []
