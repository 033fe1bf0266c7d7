"""Metrics, health, status and logs of the real processes, against the real Redis and MariaDB.

`tracker serve --processes 2` and `dramatiq tracker.tasks --processes 2` serve real traffic;
their /metrics are parsed with prometheus_client's own parser and compared exactly with what
was sent, per kind and per shard.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from prometheus_client.multiprocess import MultiProcessCollector

from tests.integration.conftest import totals
from tests.integration.test_serve_processes import children_of
from tests.processes import DRAMATIQ, TRACKER, Process, free_port, http_ok, tracker_env, wait_until
from tests.unit.test_metrics import samples, value
from tracker.embedded import EmbeddedRedis

pytestmark = pytest.mark.integration

SHARDS = 2
EVENTS = 800
BAD = {"/v1/impressions?ad_id=12x": 400, "/track_click.php?ad_id=0": 400, "/v1/clicks?ad_id=99999999999": 400}


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def scrape(url: str) -> dict:
    status, body = get(url)
    assert status == 200, body
    return samples(body)


def start_web(env: dict, log_path: Path, port: int, processes: int = 1) -> Process:
    argv = [TRACKER, "serve", "--port", str(port), "--processes", str(processes)]
    process = Process(argv, env, log_path).start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz") or not process.alive, 30, message="the web server")
    assert process.alive, process.log()
    return process


def accepted_in(counter_file: Path, tmp_path: Path) -> float:
    """The events one web process accepted, from its own multiprocess file alone."""
    alone = tmp_path / f"alone-{counter_file.stem}"
    alone.mkdir()
    shutil.copy(counter_file, alone)
    families = MultiProcessCollector(None, path=str(alone)).collect()
    return sum(s.value for f in families for s in f.samples if s.name == "tracker_events_accepted_total")


def json_lines(log: str, allowed_text=()) -> list[dict]:
    """Every line of `log` as JSON; lines containing one of `allowed_text` are skipped."""
    parsed = []
    for line in log.splitlines():
        if any(marker in line for marker in allowed_text):
            continue
        parsed.append(json.loads(line))  # fails the test on a line that is not one JSON object
    return parsed


@pytest.fixture
def observed(tmp_path, real_redis_url, mysql_url, env_settings):
    """Two web processes and two worker processes, JSON logs, metrics files under tmp_path."""
    web_port, worker_port = free_port(), free_port()
    env = tracker_env(real_redis_url, mysql_url, **{**env_settings, "log_level": "DEBUG"}, shards=SHARDS,
                      log_format="json", metrics_dir=tmp_path / "metrics", worker_metrics_port=worker_port,
                      metrics_cache_ms=200)
    subprocess.run([TRACKER, "init-db"], env=env, check=True, capture_output=True)
    web = start_web(env, tmp_path / "web.log", web_port, processes=2)
    worker = Process([DRAMATIQ, "tracker.tasks", "--processes", "2", "--threads", "2"], env,
                     tmp_path / "worker.log").start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{worker_port}/metrics") or not worker.alive, 30,
               message="the worker's metrics endpoint")
    yield env, web, worker, web_port, worker_port
    worker.stop()
    web.stop()


def send_traffic(port: int) -> Counter:
    """EVENTS good events over a thread pool (several connections, so both web processes serve)."""
    rng = random.Random(11)
    plan = [(rng.choice(["impressions", "impressions", "clicks"]), rng.randint(1, 30)) for _ in range(EVENTS)]

    def one(item):
        kind, ad_id = item
        status, _ = get(f"http://127.0.0.1:{port}/v1/{kind}?ad_id={ad_id}")
        return status

    with ThreadPoolExecutor(8) as pool:
        assert Counter(pool.map(one, plan)) == {200: EVENTS}
    for path, status in BAD.items():
        assert get(f"http://127.0.0.1:{port}{path}")[0] == status
    return Counter(plan)


def kind_of(stream: str) -> str:
    """The `kind` label of a shard: impressions_stream:1 -> impression."""
    return stream.split("s_stream", 1)[0]


def stream_of(kind: str, ad_id: int) -> str:
    base = f"{kind}_stream"
    return base if ad_id % SHARDS == 0 else f"{base}:{ad_id % SHARDS}"


def test_metrics_after_real_traffic_and_a_real_drain(observed, mysql_db, tmp_path):
    env, web, worker, web_port, worker_port = observed
    sent = send_traffic(web_port)
    expected = {kind: Counter() for kind in ("impressions", "clicks")}
    for (kind, ad_id), n in sent.items():
        expected[kind][ad_id] += n
    wait_until(lambda: totals(mysql_db) == {k: dict(v) for k, v in expected.items()}, 60, 0.25, "the counts")
    per_shard = Counter()
    for (kind, ad_id), n in sent.items():
        per_shard[stream_of(kind, ad_id)] += n
    per_kind = {"impression": sum(expected["impressions"].values()), "click": sum(expected["clicks"].values())}

    # The web processes: each scrape, whichever process answers it, shows the sum of both.
    runs = list((tmp_path / "metrics").glob("web-*"))
    files = list(runs[0].glob("counter_*.db"))
    assert len(runs) == 1 and len(files) == 2
    shares = [accepted_in(f, tmp_path) for f in files]
    assert all(shares) and sum(shares) == EVENTS, f"both web processes served traffic: {shares}"
    for _ in range(6):
        web_metrics = scrape(f"http://127.0.0.1:{web_port}/metrics")
        for kind, n in per_kind.items():
            assert value(web_metrics, "tracker_events_accepted_total", kind=kind) == n
        assert value(web_metrics, "tracker_events_rejected_total", kind="impression", status="400",
                     reason="invalid_or_missing_ad_id_parameter") == 1
        assert value(web_metrics, "tracker_events_rejected_total", kind="click", status="400",
                     reason="invalid_or_missing_ad_id_parameter") == 2
        assert value(web_metrics, "tracker_ingest_duration_seconds_count", endpoint="/v1/impressions") == per_kind["impression"] + 1
        assert value(web_metrics, "tracker_ingest_duration_seconds_count", endpoint="/v1/clicks") == per_kind["click"] + 1
        assert value(web_metrics, "tracker_ingest_duration_seconds_count", endpoint="/track_click.php") == 1

    # The per-shard gauges, from Redis and the database (cached 200 ms: wait for the last XACK).
    def shard_gauges_settled():
        m = scrape(f"http://127.0.0.1:{web_port}/metrics")
        return m if all(value(m, "tracker_stream_pending", stream=s, kind=kind_of(s)) == 0
                        for s in per_shard) else None
    web_metrics = wait_until(shard_gauges_settled, 30, 0.3, "no pending entries")
    assert value(web_metrics, "tracker_status_up") == 1
    for stream, n in per_shard.items():
        labels = {"stream": stream, "kind": kind_of(stream)}
        assert value(web_metrics, "tracker_stream_length", **labels) == n
        assert value(web_metrics, "tracker_stream_lag", **labels) == 0
        assert value(web_metrics, "tracker_stream_oldest_pending_age_seconds", **labels) == 0
        assert value(web_metrics, "tracker_stream_applied_events_total", **labels) == n
        assert value(web_metrics, "tracker_stream_dead_letters", **labels) == 0
        assert 0 <= value(web_metrics, "tracker_stream_committed_offset_age_seconds", **labels) < 120
        assert 0 <= value(web_metrics, "tracker_stream_last_drain_age_seconds", **labels) < 120
    namespace = env["TRACKER_BROKER_NAMESPACE"]
    assert value(web_metrics, "tracker_dramatiq_dead_letters", queue=f"{namespace}:tracker.XQ") == 0

    # The workers: one endpoint for the run, summing both worker processes.
    worker_metrics = wait_until(
        lambda: (m := scrape(f"http://127.0.0.1:{worker_port}/metrics")) and all(
            value(m, "tracker_drain_batch_size_sum", stream=s) == n for s, n in per_shard.items()) and m,
        30, 0.3, "the worker metrics to show every batch")
    for stream, n in per_shard.items():
        assert value(worker_metrics, "tracker_drained_events_total", stream=stream, outcome="applied") == n
        batches = value(worker_metrics, "tracker_drain_batch_size_count", stream=stream)
        assert batches >= 1
        assert value(worker_metrics, "tracker_drain_batch_duration_seconds_count", stream=stream) == batches
        assert value(worker_metrics, "tracker_drains_total", stream=stream, result="ok") >= 1

    # `tracker status`, from the same Redis and database.
    status = json.loads(subprocess.run([TRACKER, "status", "--json"], env=env, check=True, capture_output=True,
                                       text=True).stdout)
    rows = {row["stream"]: row for row in status["shards"]}
    assert set(rows) == {"impressions_stream", "impressions_stream:1", "clicks_stream", "clicks_stream:1"}
    for stream, n in per_shard.items():
        row = rows[stream]
        assert (row["length"], row["lag"], row["pending"], row["applied"], row["dead_letters"]) == (n, 0, 0, n, 0)
        assert row["oldest_pending_age_ms"] is None and row["committed_id"] != "0-0"
        assert row["last_drain_result"] in ("ok", "handed_over") and 0 <= row["last_drain_age_ms"] < 120_000
    assert status["dead_letter_queue"] == {"key": f"{namespace}:tracker.XQ", "messages": 0, "error": None}
    table = subprocess.run([TRACKER, "status"], env=env, check=True, capture_output=True, text=True).stdout
    assert "last drain" in table.splitlines()[0]
    assert re.search(r"  (running for \S+|\S+ ago)  ", table.splitlines()[1]), table  # ages in words

    # Logs: one JSON object per line (Dramatiq's own main and fork processes print a few text lines).
    worker.stop()
    web.stop()
    web_lines = json_lines(web.log())
    assert any(line["logger"] == "tracker.server" for line in web_lines)
    worker_lines = json_lines(worker.log(), allowed_text=("[dramatiq.MainProcess]", "[dramatiq.ForkProcess("))
    drained = [line for line in worker_lines if line["message"].startswith("drained ") and line.get("entries")]
    assert drained and all(isinstance(line["duration_ms"], float) and line["stream"] in per_shard for line in drained)
    assert sum(line["applied"] for line in drained) == EVENTS


def test_readyz_is_503_with_the_reason_when_redis_stops(tmp_path, mysql_url):
    private = EmbeddedRedis(tmp_path / "redis")
    url = private.start()
    port = free_port()
    web = start_web(tracker_env(url, mysql_url, health_timeout_ms=500, metrics_cache_ms=0), tmp_path / "web.log", port)
    try:
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"]["redis"]["ok"] is True

        private.stop()  # the event Redis goes away

        started = time.monotonic()
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        elapsed = time.monotonic() - started
        answer = json.loads(body)
        assert status == 503 and answer["status"] == "unavailable"
        assert answer["error"].startswith("redis: Redis unavailable")
        assert answer["checks"]["redis"]["ok"] is False and answer["checks"]["database"]["ok"] is True
        assert elapsed < 10, "the check is bounded by its timeout"
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, b'{"status":"ok"}')  # alive all the same
        metrics = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(metrics, "tracker_status_up") == 0
        assert value(metrics, "tracker_stream_length", stream="impressions_stream", kind="impression") is None

        private.start()  # back: ready again
        wait_until(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 20, 0.2, "readiness after a restart")
    finally:
        web.stop()
        private.stop()


def test_readyz_is_503_with_the_reason_when_the_database_is_unreachable(tmp_path, real_redis_url):
    closed = f"mysql://root@127.0.0.1:{free_port()}/tracker"
    port = free_port()
    web = start_web(tracker_env(real_redis_url, closed, health_timeout_ms=500), tmp_path / "web.log", port)
    try:
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        answer = json.loads(body)
        assert status == 503
        assert answer["error"].startswith("database: database unavailable")
        assert answer["checks"]["redis"]["ok"] is True and answer["checks"]["database"]["ok"] is False
    finally:
        web.stop()


def test_a_failing_drain_is_counted_and_marked(tmp_path, real_redis_url, env_settings):
    # Given a worker whose database cannot be reached, and an event waiting
    worker_port = free_port()
    env = tracker_env(real_redis_url, f"mysql://root@127.0.0.1:{free_port()}/tracker", **env_settings,
                      worker_metrics_port=worker_port, metrics_dir=tmp_path / "metrics")
    client = redis.Redis.from_url(real_redis_url)
    client.xadd("impressions_stream", {"ad_id": "1", "ts": "1795500000"})
    worker = Process([DRAMATIQ, "tracker.tasks", "--processes", "1", "--threads", "2"], env,
                     tmp_path / "worker.log").start()
    try:
        # Then the drain's failure shows in the worker's metrics and in the shard's last-drain mark
        wait_until(lambda: http_ok(f"http://127.0.0.1:{worker_port}/metrics"), 30, message="worker metrics")
        metrics = wait_until(
            lambda: (m := scrape(f"http://127.0.0.1:{worker_port}/metrics")) and
            value(m, "tracker_drains_total", stream="impressions_stream", result="error") and m,
            30, 0.3, "a failed drain in the metrics")
        assert value(metrics, "tracker_drains_total", stream="impressions_stream", result="error") >= 1
        mark = client.hgetall("{impressions_stream}:last-drain")
        assert mark[b"result"] == b"error" and b"database unavailable" in mark[b"error"]
    finally:
        worker.stop()
        client.close()


def test_tracker_run_serves_web_and_drain_metrics_from_its_one_process(tmp_path):
    # Given `tracker run` on nothing configured: embedded Redis, SQLite, web and worker in one process
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "TRACKER_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
           "TRACKER_DRAIN_BUDGET_MS": "1000"}
    process = Process([TRACKER, "run", "--port", str(port)], env, tmp_path / "run.log").start()
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/readyz") or not process.alive, 30, message="tracker run")
        assert process.alive, process.log()
        # When one event is tracked
        assert get(f"http://127.0.0.1:{port}/v1/clicks?ad_id=5")[0] == 200
        # Then its /metrics shows the request and the drain that counted it, and the process's own figures
        metrics = wait_until(
            lambda: (m := scrape(f"http://127.0.0.1:{port}/metrics")) and
            value(m, "tracker_drained_events_total", stream="clicks_stream", outcome="applied") == 1 and m,
            30, 0.2, "the drain in /metrics")
        assert value(metrics, "tracker_events_accepted_total", kind="click") == 1
        assert value(metrics, "tracker_stream_applied_events_total", stream="clicks_stream", kind="click") == 1
        assert value(metrics, "process_resident_memory_bytes") > 0
    finally:
        process.stop()


def test_counts_of_a_web_process_that_died_stay_in_the_totals(tmp_path, real_redis_url, mysql_url):
    port = free_port()
    env = tracker_env(real_redis_url, mysql_url, metrics_dir=tmp_path / "metrics")
    web = start_web(env, tmp_path / "web.log", port, processes=2)
    try:
        def send(n):
            for i in range(n):
                assert get(f"http://127.0.0.1:{port}/v1/impressions?ad_id={i + 1}")[0] == 200
        send(40)
        victim = children_of(web.popen.pid)[0]
        run = next((tmp_path / "metrics").glob("web-*"))
        assert accepted_in(run / f"counter_{victim}.db", tmp_path) > 0, "the victim served some of them"
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(children_of(web.popen.pid)) == 2 and victim not in children_of(web.popen.pid), 20,
                   message="the killed web process to be replaced")
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 20, message="serving again")
        send(40)
        metrics = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(metrics, "tracker_events_accepted_total", kind="impression") == 80
    finally:
        web.stop()
    assert not list((tmp_path / "metrics").iterdir()), "the run's metrics files are removed when it ends"
