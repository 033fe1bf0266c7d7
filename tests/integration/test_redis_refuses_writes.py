"""When Redis refuses writes, ingest answers 503 with Retry-After, never 200; and recovers.

Each test starts its own redis-server (free port, temporary directory, stopped by pid) and a
real `tracker serve` pointed at it: one out of memory under `noeviction`, one a read-only replica.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import redis

from tests.private_redis import PrivateRedis
from tests.processes import free_port, tracker_env, wait_until, web

pytestmark = pytest.mark.integration

ROUTES = ["/v1/impressions?ad_id=7", "/track_click.php?ad_id=7"]


def hit(port: int, path: str, body: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data,
                                     {"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def assert_refused(port: int) -> None:
    for path in ROUTES:
        status, headers, body = hit(port, path)
        assert status == 503, (path, status, body)
        assert headers["Retry-After"] == "1" and body["error"] == "Event store unavailable, retry later"
    status, _, _ = hit(port, "/v1/impressions", {"ad_id": 7})
    assert status == 503


@pytest.fixture
def servers(tmp_path):
    started = []

    def start(name: str, *config: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path / name, *config)
        server.start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def serve(tmp_path):
    processes = []

    def start(redis_url: str) -> int:
        port = free_port()
        processes.append(web(tracker_env(redis_url, f"sqlite:///{tmp_path / 'tracker.db'}"),
                             tmp_path / "web.log", port))
        return port
    yield start
    for process in processes:
        process.stop()
        assert "Traceback" not in process.log(), process.log()[-3000:]


def fill_up(client: redis.Redis) -> list[str]:
    """Give Redis a few MB of headroom under `noeviction`, then use them up; returns the keys written.

    Big values first, then small ones: a refused big write frees its own query buffer, which
    would leave room for a small one.
    """
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 4 * 1024 * 1024)
    keys = []
    for size in (100_000, 1_000, 10):
        for i in range(100_000):
            key = f"filler:{size}:{i}"
            try:
                client.set(key, b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            keys.append(key)
    assert len(keys) < 300_000, "Redis never refused a write"
    return keys


def test_out_of_memory_under_noeviction_answers_503_then_200_once_memory_is_freed(servers, serve):
    server = servers("oom", "maxmemory-policy noeviction")
    client = server.client()
    port = serve(server.url)
    assert hit(port, ROUTES[0])[0] == 200
    fillers = fill_up(client)

    assert_refused(port)
    assert client.xlen("impressions_stream") == 1 and client.xlen("clicks_stream") == 0  # nothing half-stored

    client.delete(*fillers)
    status, _, body = hit(port, ROUTES[0])
    assert status == 200 and client.xrange("impressions_stream", body["stream_id"], body["stream_id"])


def test_a_read_only_replica_answers_503_and_a_promoted_one_200(servers, serve):
    primary = servers("primary")
    replica = servers("replica", f"replicaof 127.0.0.1 {primary.port}")
    wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up", 30,
               message="the replica to sync")
    port = serve(replica.url)

    assert_refused(port)
    primary.client().set("written-on-the-primary", 1)
    wait_until(lambda: replica.client().get("written-on-the-primary"), 10, message="replication")
    assert replica.client().exists("impressions_stream", "clicks_stream") == 0

    replica.client().replicaof("NO", "ONE")  # failover: the replica becomes a primary
    status, _, body = hit(port, ROUTES[0])
    assert status == 200
    assert replica.client().xrange("impressions_stream", body["stream_id"], body["stream_id"])
