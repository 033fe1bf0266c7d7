"""The demo page and tracker.js as served, called in-process."""

import html
import re
import urllib.parse

import pytest

from tests.unit.test_web import app, layout_groups, make_runtime  # noqa: F401  (fixtures)
from tests.wsgi import call
from tracker.signing import ClickSigner
from tracker.web import create_app

SECRET = "unit-test-click-secret-0123456789"


@pytest.fixture
def app_with_secret(settings, redis_client, sqlite_url, layout_groups):  # noqa: F811
    return create_app(make_runtime(settings.replace(click_secret=SECRET), redis_client, sqlite_url))


def ad_5_link(page: bytes) -> str:
    return html.unescape(re.search(rb'data-ad-id="5" id="ad-5" href="([^"]*)"', page)[1].decode())


def test_the_demo_signs_its_click_link_with_the_configured_secret(app_with_secret):
    page = call(app_with_secret, "GET", "/", headers={"Host": "tracker.example:8080"}).body
    link = urllib.parse.urlsplit(ad_5_link(page))
    query = dict(urllib.parse.parse_qsl(link.query))
    assert (link.scheme, link.netloc, link.path) == ("http", "tracker.example:8080", "/c")
    assert query["url"] == "http://tracker.example:8080/?via=click#ad-5"
    ClickSigner(SECRET).verify(5, query["url"], query["sig"])  # raises if it does not match
    redirect = call(app_with_secret, "GET", f"/c?{link.query}")
    assert redirect.status == 302 and redirect.header("Location") == query["url"]


def test_without_a_secret_the_demo_link_is_plain_and_says_why(app):
    page = call(app, "GET", "/").body
    assert ad_5_link(page) == "#ad-5"
    assert b"no TRACKER_CLICK_SECRET" in page and b"{{" not in page


def test_tracker_js_is_served_for_any_origin_and_cached_briefly(app):
    script = call(app, "GET", "/tracker.js")
    assert script.status == 200 and script.header("Content-Type").startswith("application/javascript")
    assert script.header("Access-Control-Allow-Origin") == "*"
    assert script.header("Cache-Control") == "public, max-age=300"
    assert b"navigator.sendBeacon" in script.body and b"/v1/events" in script.body
