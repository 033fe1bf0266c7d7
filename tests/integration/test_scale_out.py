"""Scale-out end to end: the event streams on a 3-master Redis Cluster, 4 shards per kind,
`tracker serve --processes 2`, `dramatiq tracker.tasks --processes 2`, and the Dramatiq broker on
a separate Redis or on RabbitMQ. Events go through HTTP; the totals in MariaDB must be exact.
"""

from __future__ import annotations

import json
import random
import secrets
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from tests.conftest import _reachable, service_missing
from tests.integration.conftest import totals
from tests.integration.test_pipeline import send
from tests.processes import TRACKER, Process, free_port, http_ok, tracker_env, wait_until, worker
from tests.servers import LocalRedisCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 3_000
ADS = 60
SHARDS = 4
#: The RabbitMQ of this machine (scripts/services.sh starts it); tests use a queue of their own.
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = LocalRedisCluster.unavailable()
    if reason:
        service_missing("redis-server (for the Redis Cluster tests)", RuntimeError(reason))
    started = LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3, password="scale-out").start()
    yield started
    started.stop()


@pytest.fixture
def rabbitmq_queue():
    """A queue name of this test's own on the local RabbitMQ; its queues are deleted afterwards."""
    error = _reachable(RABBITMQ_URL, 5672)
    if error:
        service_missing("RabbitMQ", error)
    name = f"tracker-test-{secrets.token_hex(4)}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    for queue in (name, f"{name}.DQ", f"{name}.XQ"):
        channel.queue_delete(queue)
    connection.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_settings(request, real_redis_url) -> dict:
    """The Dramatiq broker: the test Redis (not the cluster), or RabbitMQ."""
    if request.param == "redis":
        return {"broker_url": real_redis_url, "broker_namespace": f"dramatiq-test-{secrets.token_hex(3)}"}
    return {"broker_url": RABBITMQ_URL, "queue_name": request.getfixturevalue("rabbitmq_queue")}


def broker_carried_messages(settings: dict, real_redis) -> bool:
    """The drain messages went through the broker under test (not some default one)."""
    if settings["broker_url"] == RABBITMQ_URL:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:  # declared by Dramatiq when the tick sent the first drain; passive fails if absent
            return connection.channel().queue_declare(settings["queue_name"], passive=True) is not None
        finally:
            connection.close()
    return bool(real_redis.keys(f"{settings['broker_namespace']}:*"))


def test_events_through_http_are_counted_exactly_once_on_a_cluster(tmp_path, cluster, mysql_url, mysql_db,
                                                                     env_settings, broker_settings, real_redis):
    cluster.flush()
    settings = {**env_settings, **broker_settings, "shards": SHARDS}
    env = tracker_env(cluster.url(), mysql_url, **settings)
    port = free_port()
    web = Process([TRACKER, "serve", "--port", str(port), "--processes", "2"], env, tmp_path / "web.log").start()
    workers = worker(env, tmp_path / "worker.log", processes=2, threads=2)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/tracker.js") or not web.alive, 30, message="serve")
        expected = send_events(port, random.Random(11))
        wait_until(lambda: totals(mysql_db) == expected, 120, 0.5, "the counts to match what was accepted")
        status = run_status(env)
        assert sum(row["applied"] for row in status) == EVENTS
        assert len(status) == 2 * SHARDS and all(row["pending"] == 0 for row in status)
        assert sum(1 for row in status if row["applied"]) == 2 * SHARDS  # every shard had events
        assert broker_carried_messages(broker_settings, real_redis)
        with cluster.client() as client:  # the tick's leader lock lives on the cluster, not the broker
            assert client.exists("tracker:tick-leader") and not real_redis.exists("tracker:tick-leader")
    finally:
        workers.stop()
        web.stop()
    for process in (workers, web):
        assert "Traceback" not in process.log(), process.log()[-3000:]


def send_events(port: int, rng: random.Random) -> dict:
    """EVENTS events over 16 client threads; returns the expected counts per kind and ad."""
    plan = [(rng.choice(["impressions", "impressions", "clicks"]), rng.randint(1, ADS), rng.randint(0, 3))
            for _ in range(EVENTS)]
    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(lambda item: send(port, *item), plan))
    assert statuses == {200: EVENTS}
    expected: dict = {"impressions": Counter(), "clicks": Counter()}
    for kind, ad_id, _ in plan:
        expected[kind][ad_id] += 1
    return {kind: dict(counts) for kind, counts in expected.items()}


def run_status(env: dict) -> list[dict]:
    """The shards of `tracker status --json`."""
    done = subprocess.run([TRACKER, "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["shards"]

