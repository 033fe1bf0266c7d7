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


@pytest.fixture
def app_with_public_url(settings, redis_client, sqlite_url, layout_groups):  # noqa: F811
    settings = settings.replace(click_secret=SECRET, public_url="http://tracker.example:8080")
    return create_app(make_runtime(settings, redis_client, sqlite_url))


def test_the_demo_signs_its_click_link_with_the_configured_secret(app_with_public_url):
    page = call(app_with_public_url, "GET", "/", headers={"Host": "tracker.example:8080"}).body
    link = urllib.parse.urlsplit(ad_5_link(page))
    query = dict(urllib.parse.parse_qsl(link.query))
    assert (link.scheme, link.netloc, link.path) == ("http", "tracker.example:8080", "/c")
    assert query["url"] == "http://tracker.example:8080/?via=click#ad-5"
    ClickSigner(SECRET).verify(5, query["url"], query["sig"])  # raises if it does not match
    redirect = call(app_with_public_url, "GET", f"/c?{link.query}")
    assert redirect.status == 302 and redirect.header("Location") == query["url"]


def test_a_forged_host_header_gets_no_link_signed_for_its_host(app_with_secret, settings):
    """The demo's link is signed for TRACKER_PUBLIC_URL or the listening address, never for the
    Host a client sends: otherwise anyone could get a valid /c redirect to a host of theirs."""
    page = call(app_with_secret, "GET", "/", headers={"Host": "evil.example"}).body
    link = ad_5_link(page)
    assert "evil.example" not in link
    assert link.startswith(f"http://{settings.host}:{settings.port}/c?")


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
