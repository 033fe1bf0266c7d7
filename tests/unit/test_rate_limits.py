"""Rate limiting per client IP (Redis counters keyed by a keyed hash), and trusted proxies."""

import ipaddress
import json
import time

import pytest

from tests.unit.test_batch import make_app
from tests.unit.test_pixel_and_clicks import SECRET, link
from tests.unit.test_web import entries
from tests.wsgi import call
from tracker.web.visitors import TrustedProxies

KEY = "ip-hash-key-0123456789abcdef"


@pytest.fixture
def app(settings, redis_client, sqlite_url):
    return make_app(settings, redis_client, sqlite_url, rate_limit=3, rate_limit_window_ms=60_000, ip_hash_key=KEY,
                    click_secret=SECRET)


def hit(app, ip="203.0.113.9", path="/v1/impressions?ad_id=1", **kwargs):
    return call(app, "GET", path, environ_extra={"REMOTE_ADDR": ip}, **kwargs)


def test_over_the_limit_a_client_gets_429_with_retry_after(app, redis_client):
    assert [hit(app).status for _ in range(3)] == [200, 200, 200]
    crossing = hit(app)  # stored in the same round trip that counted it over the limit: answered normally
    assert crossing.status == 200
    refused = hit(app)
    assert refused.status == 429
    assert 1 <= int(refused.header("Retry-After")) <= 60
    assert refused.json()["error"] == "Too many requests" and refused.header("Access-Control-Allow-Origin") == "*"
    assert len(entries(redis_client, "impressions_stream")) == 4  # every 200 is stored, no 429 is


def test_clients_are_limited_separately(app):
    for _ in range(4):
        hit(app, "203.0.113.9")
    assert hit(app, "203.0.113.9").status == 429
    assert hit(app, "198.51.100.1").status == 200


def test_a_batch_counts_its_events(app, redis_client):
    batch = json.dumps([{"type": "click", "ad_id": 1}] * 5)
    first = call(app, "POST", "/v1/events", batch, "application/json", environ_extra={"REMOTE_ADDR": "192.0.2.1"})
    assert first.status == 200  # crosses the limit of 3 in one request: stored, then remembered
    second = call(app, "POST", "/v1/events", batch, "application/json", environ_extra={"REMOTE_ADDR": "192.0.2.1"})
    assert second.status == 429 and second.header("Retry-After")
    assert len(entries(redis_client, "clicks_stream")) == 5


def test_the_pixel_and_the_redirect_are_limited_too(app, redis_client):
    for _ in range(4):
        hit(app)
    pixel = hit(app, path="/i.gif?ad_id=1")
    assert pixel.status == 429 and pixel.header("Content-Type") == "image/gif" and pixel.header("Retry-After")
    click = hit(app, path=link())
    assert click.status == 429 and click.header("Location") is None
    assert entries(redis_client, "clicks_stream") == []


def test_redis_holds_a_keyed_hash_that_expires_never_the_ip(app, redis_client):
    hit(app, "203.0.113.9")
    keys = [key.decode() for key in redis_client.keys("tracker:rate:*")]
    assert len(keys) == 1 and "203.0.113.9" not in keys[0]
    assert 0 < redis_client.pttl(keys[0]) <= 60_000
    assert all(b"203.0.113.9" not in key for key in redis_client.keys("*"))


def test_the_hash_depends_on_the_key(settings, fake_redis, sqlite_url):
    a = make_app(settings, fake_redis, sqlite_url, rate_limit=3, ip_hash_key=KEY)
    b = make_app(settings, fake_redis, sqlite_url, rate_limit=3, ip_hash_key=KEY[::-1])
    hit(a), hit(b)
    assert len(fake_redis.keys("tracker:rate:*")) == 2


def test_the_limit_lifts_when_the_window_ends(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, rate_limit=1, rate_limit_window_ms=1_000, ip_hash_key=KEY)
    hit(app), hit(app)
    assert hit(app).status == 429
    time.sleep(1.2)
    assert hit(app).status == 200


def test_filtered_requests_count_towards_the_limit(app, redis_client):
    for _ in range(4):
        hit(app, headers={"Sec-Purpose": "prefetch"})
    assert hit(app).status == 429


def test_rate_limiting_is_off_by_default(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url)
    assert all(hit(app).status == 200 for _ in range(50))
    assert fake_redis.keys("tracker:rate:*") == []


# -- the client's address, behind trusted proxies ------------------------------------------------

PROXIES = TrustedProxies([ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")])


@pytest.mark.parametrize("peer, forwarded, client", [
    ("203.0.113.9", None, "203.0.113.9"),  # no proxy
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer's header is not believed
    ("10.0.0.5", "1.2.3.4", "1.2.3.4"),  # a trusted proxy's is
    ("10.0.0.5", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # what the client wrote itself, left of its address, is not
    ("10.0.0.5", "1.2.3.4, 10.0.0.7", "1.2.3.4"),  # a chain of trusted proxies is skipped
    ("10.0.0.5", "10.0.0.9", "10.0.0.9"),  # only trusted hops: the furthest
    ("10.0.0.5", "bogus", "10.0.0.5"),  # garbage: the last proxy that spoke
    ("10.0.0.5", "1.2.3.4, bogus", "10.0.0.5"),
    ("10.0.0.5", None, "10.0.0.5"),
    ("2001:db8::1", "2001:db8::2, 2a00::7", "2a00::7"),
])
def test_client_ip(peer, forwarded, client):
    environ = {"REMOTE_ADDR": peer, **({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {})}
    assert PROXIES.client_ip(environ) == client


def test_forwarding_headers_from_untrusted_peers_are_dropped():
    environ = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4", "HTTP_X_FORWARDED_HOST": "evil",
               "HTTP_FORWARDED": "for=1.2.3.4", "HTTP_USER_AGENT": "x"}
    PROXIES.drop_untrusted_headers(environ)
    assert environ == {"REMOTE_ADDR": "203.0.113.9", "HTTP_USER_AGENT": "x"}
    trusted = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}
    PROXIES.drop_untrusted_headers(trusted)
    assert trusted["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_the_limit_follows_the_forwarded_client_behind_a_trusted_proxy(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, rate_limit=1, ip_hash_key=KEY, trusted_proxies="10.0.0.0/8")

    def via_proxy(client):
        return hit(app, "10.0.0.5", headers={"X-Forwarded-For": client})
    via_proxy("1.2.3.4"), via_proxy("1.2.3.4")
    assert via_proxy("1.2.3.4").status == 429
    assert via_proxy("5.6.7.8").status == 200  # another visitor behind the same proxy


def test_an_untrusted_peer_cannot_dodge_the_limit_with_forwarded_for(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, rate_limit=1, ip_hash_key=KEY, trusted_proxies="10.0.0.0/8")
    statuses = [hit(app, "203.0.113.9", headers={"X-Forwarded-For": f"1.2.3.{n}"}).status for n in range(3)]
    assert statuses == [200, 200, 429]
