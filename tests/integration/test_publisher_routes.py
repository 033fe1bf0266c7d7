"""Batches, pixels and click redirects through a real `tracker serve`, `dramatiq tracker.tasks`,
Redis and MariaDB: counted exactly once, retried event ids once, filtered requests not at all
(but visible in /v1/filtered)."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.integration.conftest import pending, totals
from tests.processes import Process, free_port, tracker_env, wait_until, web, worker
from tests.unit.test_batch import make_app, post
from tests.wsgi import call
from tracker.embedded import redis_server_binary
from tracker.signing import ClickSigner

pytestmark = pytest.mark.integration

SECRET = "integration-click-secret-0123456789"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
ADS = 30
TARGET = "https://advertiser.example/landing?campaign=7"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep the 302 (the target is not on this machine, and must not be fetched)."""

    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data, {"User-Agent": BROWSER, **(headers or {})})
    try:
        with OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def make_batches(rng: random.Random, count: int) -> list[list[dict]]:
    now = int(time.time())
    batches = []
    for _ in range(count):
        size = rng.randint(1, 100)
        batches.append([{"type": rng.choice(["impression", "impression", "click"]), "ad_id": rng.randint(1, ADS),
                         "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                         **({"ts": now - rng.randint(0, 600)} if rng.random() < 0.5 else {})}
                        for _ in range(size)])
    return batches


def test_batches_pixels_and_clicks_are_counted_exactly_once(tmp_path, real_redis_url, mysql_url, mysql_db,
                                                            real_redis, env_settings):
    env = tracker_env(real_redis_url, mysql_url, click_secret=SECRET, **env_settings)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = web(env, tmp_path / "web.log", port)
    drainer = worker(env, tmp_path / "worker.log")
    rng = random.Random(11)
    expected: Counter = Counter()
    batches = make_batches(rng, 40)
    for batch in batches:
        for event in batch:
            expected[event["type"] + "s", event["ad_id"]] += 1
    # Every batch is sent, and a third of them again (a retried beacon): same event ids.
    sends = batches + rng.sample(batches, len(batches) // 3)
    pixels = [rng.randint(1, ADS) for _ in range(150)]
    links = [rng.randint(1, ADS) for _ in range(100)]
    expected.update(("impressions", ad) for ad in pixels)
    expected.update(("clicks", ad) for ad in links)
    signer = ClickSigner(SECRET)

    def post_batch(batch):
        return fetch(f"{base}/v1/events", json.dumps(batch).encode(), {"Content-Type": "text/plain;charset=UTF-8"})

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post_batch, sends))
            pixel_answers = list(pool.map(lambda ad: fetch(f"{base}/i.gif?ad_id={ad}"), pixels))
            click_answers = list(pool.map(lambda ad: fetch(base + signer.link("", ad, TARGET)), links))
        assert {status for status, _, _ in answers} == {200}
        bodies = [json.loads(body) for _, _, body in answers]
        assert sum(b["accepted"] for b in bodies) == sum(len(b) for b in batches)
        assert sum(b["duplicates"] for b in bodies) == sum(len(b) for b in sends[len(batches):])
        assert {status for status, _, _ in pixel_answers} == {200}
        assert all(headers["Content-Type"] == "image/gif" for _, headers, _ in pixel_answers)
        assert {(status, headers.get("Location")) for status, headers, _ in click_answers} == {(302, TARGET)}

        # Filtered: answered normally, never counted.
        bot_batch = [{"type": "impression", "ad_id": 1}] * 5 + [{"type": "click", "ad_id": 1}] * 2
        status, _, body = fetch(f"{base}/v1/events", json.dumps(bot_batch).encode(),
                                {"Content-Type": "application/json", "User-Agent": GOOGLEBOT})
        assert status == 200 and json.loads(body)["filtered"] == 7
        assert fetch(f"{base}/i.gif?ad_id=2", headers={"Sec-Purpose": "prefetch;prerender"})[0] == 200
        assert fetch(base + signer.link("", 3, TARGET), headers={"User-Agent": GOOGLEBOT})[0] == 302
        assert fetch(f"{base}/track_click.php?ad_id=4", headers={"Purpose": "prefetch"})[0] == 200
        # Refused: nothing counted.
        assert fetch(base + signer.link("", 3, TARGET).replace("sig=", "sig=x"))[0] == 400
        assert fetch(f"{base}/v1/events", b'[{"type":"click","ad_id":5},{"type":"click","ad_id":0}]',
                     {"Content-Type": "application/json"})[0] == 400

        want = {kind: {ad: n for (k, ad), n in expected.items() if k == kind} for kind in ("impressions", "clicks")}
        wait_until(lambda: totals(mysql_db) == want, 90, 0.25, "the counts to match what was sent, once each")
        assert pending(real_redis, "impressions_stream", "impression_group") == 0
        assert pending(real_redis, "clicks_stream", "click_group") == 0
        assert real_redis.xlen("impressions_stream") + real_redis.xlen("clicks_stream") == sum(expected.values())

        day = time.strftime("%Y-%m-%d", time.gmtime())
        filtered = json.loads(fetch(f"{base}/v1/filtered?from={day}&to={day}")[2])["totals"]
        assert filtered == {"impressions": {"bot": 5, "prefetch": 1}, "clicks": {"bot": 3, "prefetch": 1}}
        print(f"batches={len(sends)} (retried={len(sends) - len(batches)}) pixels={len(pixels)} clicks={len(links)} "
              f"counted={sum(expected.values())} filtered=10 duplicates_counted=0")
    finally:
        drainer.stop()
        server.stop()


def test_rate_limits_follow_the_forwarded_client_behind_a_trusted_proxy(tmp_path, real_redis_url, mysql_url):
    """Through waitress: X-Forwarded-For reaches the app from a trusted proxy (127.0.0.1 here)."""
    env = tracker_env(real_redis_url, mysql_url, rate_limit=2, ip_hash_key="integration-ip-hash-key-0123",
                      trusted_proxies="127.0.0.1")
    port = free_port()
    server = web(env, tmp_path / "web.log", port)
    base = f"http://127.0.0.1:{port}"
    try:
        def from_client(ip):
            return fetch(f"{base}/v1/impressions?ad_id=1", headers={"X-Forwarded-For": ip})
        statuses = [from_client("198.51.100.1")[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the request crossing the limit was stored: answered
        status, headers, body = from_client("198.51.100.1")
        assert status == 429 and int(headers["Retry-After"]) >= 1 and json.loads(body)["error"]
        assert from_client("203.0.113.5")[0] == 200  # another visitor behind the same proxy
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (it is filled up, or its scripts flushed)."""
    port = free_port()
    server = Process([redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no",
                      "--maxmemory-policy", "noeviction"], {}, tmp_path / "redis.log").start()
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: _pings(client), 10, message="redis-server")
        yield client
    finally:
        client.close()
        server.kill()


def test_a_full_redis_refuses_a_batch_with_503(private_redis, settings, sqlite_url):
    """A real redis-server over its memory limit (noeviction): a 503, not a 500.

    redis-py reports it as OutOfMemoryError, without the "OOM" code in the message, and a
    pipeline prefixes the message with the command: both escaped redis_errors() before.
    """
    client = private_redis
    app = make_app(settings, client, sqlite_url)
    assert post(app, [{"type": "click", "ad_id": 1}]).status == 200
    for n in range(40):
        client.set(f"filler:{n}", "x" * 100_000)
    client.config_set("maxmemory", "1mb")  # now well over its limit, and nothing may be evicted
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set("one-more", "x")
    response = post(app, [{"type": "click", "ad_id": 1}, {"type": "impression", "ad_id": 2,
                                                           "event_id": "abcdefghijklmnop"}])
    assert response.status == 503 and response.header("Retry-After")
    assert response.json()["error"] == "Event store unavailable, retry later"
    assert call(app, "GET", "/v1/clicks?ad_id=1").status == 503  # the single-event route too
    assert call(app, "GET", "/i.gif?ad_id=1").status == 503


def test_after_redis_forgets_its_scripts_each_event_is_stored_once(private_redis, settings, sqlite_url):
    client = private_redis
    app = make_app(settings, client, sqlite_url)
    ids = [f"retry-after-flush-{n:04d}" for n in range(6)]
    first = post(app, [{"type": "impression", "ad_id": 1, "event_id": i} for i in ids[:3]]).json()
    client.script_flush()
    again = post(app, [{"type": "impression", "ad_id": 1, "event_id": i} for i in ids]
                 + [{"type": "click", "ad_id": 2}]).json()
    assert [e["status"] for e in again["events"]] == ["duplicate"] * 3 + ["stored"] * 4
    assert [e["stream_id"] for e in again["events"][:3]] == [e["stream_id"] for e in first["events"]]
    assert client.xlen("impressions_stream") == 6 and client.xlen("clicks_stream") == 1


def _pings(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False
