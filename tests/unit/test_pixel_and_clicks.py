"""The pixel, the signed click redirect, the link signing API and `tracker sign-click`, in-process."""

import json
import urllib.parse

import pytest
import redis

from tests.unit.test_batch import make_app
from tests.unit.test_web import entries, make_runtime
from tests.wsgi import call
from tracker.cli import main
from tracker.signing import ClickSigner
from tracker.web import create_app
from tracker.web.pixel import GIF

SECRET = "s3cret-click-key-0123456789"
TOKEN = "link-api-token-0123456789abcdef"
TARGET = "https://advertiser.example/landing?utm_source=tracker&x=1"


@pytest.fixture
def app(settings, redis_client, sqlite_url):
    return make_app(settings, redis_client, sqlite_url, click_secret=SECRET, link_api_token=TOKEN,
                    public_url="https://t.example")


def link(ad_id=7, url=TARGET, secret=SECRET):
    return ClickSigner(secret).link("", ad_id, url)


def clicks(client):
    return entries(client, "clicks_stream")


# -- pixel -----------------------------------------------------------------------------------

def test_the_gif_is_a_transparent_1x1_image():
    assert GIF[:6] == b"GIF89a" and GIF[6:10] == b"\x01\x00\x01\x00"  # width 1, height 1
    extension = GIF.index(b"\x21\xf9\x04")  # graphic control extension
    assert GIF[extension + 3] & 1  # transparency flag
    assert GIF.endswith(b";")


@pytest.mark.parametrize("path", ["/i.gif?ad_id=42", "/track_impression.php?ad_id=42&format=gif"])
def test_the_pixel_counts_an_impression_and_is_never_cached(app, redis_client, path):
    response = call(app, "GET", path)
    assert response.status == 200 and response.body == GIF
    assert response.header("Content-Type") == "image/gif"
    assert "no-store" in response.header("Cache-Control") and response.header("Pragma") == "no-cache"
    assert response.header("Expires") == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert [f["ad_id"] for _, f in entries(redis_client, "impressions_stream")] == ["42"]


@pytest.mark.parametrize("query", ["", "ad_id=", "ad_id=12x", "ad_id=0", "ad_id=1&ad_id=2", "ad_id=99999999999",
                                   "ad_id=5&event_id=short"])
def test_a_bad_pixel_answers_400_with_the_gif_and_the_reason_in_a_header(app, redis_client, query):
    response = call(app, "GET", f"/i.gif?{query}")
    assert response.status == 400 and response.body == GIF and response.header("Content-Type") == "image/gif"
    assert response.header("X-Tracker-Error")
    assert entries(redis_client, "impressions_stream") == []


def test_a_pixel_event_id_is_counted_once(app, redis_client):
    for _ in range(3):
        assert call(app, "GET", "/i.gif?ad_id=3&event_id=newsletter-2026-11-24-r1234").status == 200
    assert len(entries(redis_client, "impressions_stream")) == 1


def test_a_head_on_the_pixel_counts_nothing(app, redis_client):
    response = call(app, "HEAD", "/i.gif?ad_id=3")
    assert response.status == 200 and response.body == b"" and response.header("Content-Type") == "image/gif"
    assert entries(redis_client, "impressions_stream") == []


def test_the_old_url_without_format_gif_still_answers_json(app):
    assert call(app, "GET", "/track_impression.php?ad_id=3").header("Content-Type") == "application/json"
    assert call(app, "GET", "/track_click.php?ad_id=3&format=gif").header("Content-Type") == "application/json"


def test_the_pixel_with_redis_down_is_a_503_gif(settings, sqlite_url):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    app = create_app(make_runtime(settings, dead, sqlite_url))
    response = call(app, "GET", "/i.gif?ad_id=3")
    assert response.status == 503 and response.body == GIF and response.header("Retry-After")


# -- click redirect ----------------------------------------------------------------------------

def test_a_signed_link_counts_the_click_and_redirects(app, redis_client):
    response = call(app, "GET", link())
    assert response.status == 302 and response.header("Location") == TARGET
    assert response.header("Cache-Control") == "no-store"
    assert [f["ad_id"] for _, f in clicks(redis_client)] == ["7"]


def test_every_click_on_a_link_counts(app, redis_client):
    for _ in range(3):
        assert call(app, "GET", link()).status == 302
    assert len(clicks(redis_client)) == 3


def signed_query(ad_id=7, url=TARGET, sig=None):
    return {"ad_id": str(ad_id), "url": url, "sig": sig or ClickSigner(SECRET).sign(ad_id, url)}


@pytest.mark.parametrize("params", [
    {**signed_query(), "sig": "A" * 43},  # wrong signature
    {**signed_query(), "sig": ""},
    {**signed_query(), "sig": "é"},  # not ASCII
    {**signed_query(), "url": "https://evil.example/"},  # the url of another link
    {**signed_query(), "ad_id": "8"},  # the id of another ad
    {**signed_query(), "url": TARGET + "&extra=1"},
    signed_query(url="javascript:alert(1)", sig="x"),
    signed_query(url="//evil.example/", sig="x"),
    signed_query(url="https:///evil.example", sig="x"),
    {k: v for k, v in signed_query().items() if k != "sig"},
    {k: v for k, v in signed_query().items() if k != "url"},
    {k: v for k, v in signed_query().items() if k != "ad_id"},
    {**signed_query(), "ad_id": "7x"},
])
def test_anything_but_a_correctly_signed_link_is_a_400_json_not_a_redirect(app, redis_client, params):
    response = call(app, "GET", "/c?" + urllib.parse.urlencode(params))
    assert response.status == 400 and response.header("Location") is None
    assert response.header("Content-Type") == "application/json" and response.json()["error"]
    assert clicks(redis_client) == []


def test_a_parameter_given_twice_is_refused(app, redis_client):
    response = call(app, "GET", link() + "&url=" + urllib.parse.quote("https://evil.example/", safe=""))
    assert response.status == 400 and response.header("Location") is None


def test_a_link_signed_with_another_secret_is_refused(app, redis_client):
    response = call(app, "GET", link(secret="another-secret-0123456789"))
    assert response.status == 400 and clicks(redis_client) == []


def test_without_a_secret_the_redirect_refuses_clearly(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url)
    response = call(app, "GET", link())
    assert response.status == 501 and "TRACKER_CLICK_SECRET" in response.json()["detail"]
    assert response.header("Location") is None and clicks(fake_redis) == []


def test_a_head_on_a_link_redirects_without_counting(app, redis_client):
    response = call(app, "HEAD", link())
    assert response.status == 302 and response.header("Location") == TARGET
    assert clicks(redis_client) == []


def test_a_redirect_with_redis_down_is_a_503_not_a_redirect(settings, sqlite_url):
    dead = redis.Redis(port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    app = create_app(make_runtime(settings.replace(click_secret=SECRET), dead, sqlite_url))
    response = call(app, "GET", link())
    assert response.status == 503 and response.header("Location") is None


def test_signatures_bind_ad_and_url():
    signer = ClickSigner(SECRET)
    assert signer.sign(7, TARGET) == signer.sign(7, TARGET)
    assert len({signer.sign(7, TARGET), signer.sign(77, TARGET), signer.sign(7, TARGET + "x"),
                ClickSigner(SECRET + "x").sign(7, TARGET)}) == 4


# -- link API ----------------------------------------------------------------------------------

def post_links(app, payload, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return call(app, "POST", "/v1/links", json.dumps(payload), "application/json", headers=headers)


def test_the_link_api_signs_links_that_the_redirect_follows(app, redis_client):
    response = post_links(app, {"ad_id": 7, "url": TARGET})
    assert response.status == 200
    body = response.json()
    assert body["ad_id"] == 7 and body["url"] == TARGET and body["link"].startswith("https://t.example/c?")
    followed = call(app, "GET", body["link"].removeprefix("https://t.example"))
    assert followed.status == 302 and followed.header("Location") == TARGET


def test_the_link_api_signs_many(app):
    body = post_links(app, [{"ad_id": 1, "url": TARGET}, {"ad_id": 2, "url": "http://b.example/"}]).json()
    assert [item["ad_id"] for item in body] == [1, 2]


@pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789abcdef", TOKEN + "x", TOKEN[:-1]])
def test_the_link_api_needs_the_token(app, token):
    response = post_links(app, {"ad_id": 7, "url": TARGET}, token)
    assert response.status == 401 and response.header("WWW-Authenticate")
    assert "sig" not in response.json()


def test_the_link_api_is_off_without_a_token(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, click_secret=SECRET)
    response = post_links(app, {"ad_id": 7, "url": TARGET}, "")
    assert response.status == 403 and "TRACKER_LINK_API_TOKEN" in response.json()["detail"]


@pytest.mark.parametrize("payload, error", [
    ({"ad_id": 0, "url": TARGET}, "Invalid or missing ad_id parameter"),
    ({"ad_id": 7, "url": "ftp://x.example/"}, "Invalid url"),
    ({"ad_id": 7, "url": "https://x.example/a b"}, "Invalid url"),
    ({"ad_id": 7}, "Invalid url"),
    ([], "Too many links"),
    ("text", "Malformed JSON body"),
])
def test_the_link_api_refuses_what_it_cannot_sign(app, payload, error):
    response = post_links(app, payload)
    assert response.status == 400 and response.json()["error"] == error


# -- tracker sign-click ------------------------------------------------------------------------

def test_sign_click_prints_a_link_the_redirect_follows(app, monkeypatch, capsys):
    monkeypatch.setenv("TRACKER_CLICK_SECRET", SECRET)
    assert main(["sign-click", "--ad-id", "7", "--url", TARGET, "--base-url", "https://t.example/"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("https://t.example/c?ad_id=7&url=")
    response = call(app, "GET", printed.removeprefix("https://t.example"))
    assert response.status == 302 and response.header("Location") == TARGET


def test_sign_click_refuses_without_a_secret_or_with_a_bad_url(monkeypatch, capsys):
    assert main(["sign-click", "--ad-id", "7", "--url", TARGET]) == 2
    assert "TRACKER_CLICK_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("TRACKER_CLICK_SECRET", SECRET)
    with pytest.raises(SystemExit, match="http"):
        main(["sign-click", "--ad-id", "7", "--url", "javascript:alert(1)"])
