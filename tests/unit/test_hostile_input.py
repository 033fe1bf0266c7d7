"""Inputs the fuzzer did not generate and that once answered 500: each must be a 4xx JSON error."""

import json

import pytest

from tests.unit.test_web import layout_groups, make_runtime  # noqa: F401  (fixtures)
from tests.wsgi import call
from tracker.web import create_app

SECRET = "hostile-input-click-secret-012345"
TOKEN = "hostile-input-link-api-token-0123"
DEEP_JSON = b"[" * 20_000  # 20 kB, under the body limit, deeper than Python's recursion limit


@pytest.fixture
def app(settings, redis_client, sqlite_url, layout_groups):  # noqa: F811
    settings = settings.replace(click_secret=SECRET, link_api_token=TOKEN, public_url="https://t.example")
    return create_app(make_runtime(settings, redis_client, sqlite_url))


def assert_json_4xx(response, status=400):
    assert response.status == status, response.body[:200]
    assert "error" in json.loads(response.body)


@pytest.mark.parametrize("path", ["/v1/impressions", "/track_click.php", "/v1/events"])
def test_json_nested_deeper_than_python_recurses_is_a_400(app, path):
    assert_json_4xx(call(app, "POST", path, DEEP_JSON, "application/json"))


def test_the_link_api_refuses_deep_json_too(app):
    response = call(app, "POST", "/v1/links", DEEP_JSON, "application/json",
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert_json_4xx(response)


def test_a_url_that_is_not_a_url_is_a_400_on_the_redirect_and_the_link_api(app):
    assert_json_4xx(call(app, "GET", "/c?ad_id=5&url=http://[::1/&sig=x"))
    body = json.dumps({"ad_id": 5, "url": "http://[::1/"})
    assert_json_4xx(call(app, "POST", "/v1/links", body, "application/json",
                         headers={"Authorization": f"Bearer {TOKEN}"}))


@pytest.mark.parametrize("path", ["/v1/stats", "/v1/filtered", "/v1/stats.csv"])
def test_dates_at_the_edge_of_the_calendar_are_a_400(app, path):
    assert_json_4xx(call(app, "GET", f"{path}?to=0001-01-01"))


def test_the_filtered_counts_take_a_range_like_the_stats(app):
    report = json.loads(call(app, "GET", "/v1/filtered?range=30d").body)
    assert len(report["days"]) == 30
