"""What shards, worker processes and web processes each buy, measured on this machine.

    .venv/bin/python -m bench.scaling [--events 200000] [--seconds 5]

Drain: N events are stored first (pipelined, over 1,000 ads), then `dramatiq tracker.tasks
--processes P --threads T` (T = 8 by default) starts against a fresh MariaDB schema; the rate is the events counted between
the first and the last poll that saw progress, divided by the time between them, so the
workers' boot is not counted. Each (shards, processes) pair runs once, with the default drain
settings (TRACKER_BATCH_SIZE, TRACKER_READS_PER_COMMIT).

Ingest: `tracker serve --processes P` on an empty Redis, loaded by wrk (2 threads, 32
connections, GET /v1/impressions?ad_id=7) for the given seconds after a 1 s warm-up.

Each run gets a private redis-server (bench/services.py, configured as production) and a
temporary schema on BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306/). Prints one line
per run; numbers depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

from bench.services import private_redis
from tests.processes import TRACKER, Process, free_port, http_ok, tracker_env, wait_until, worker
from tracker.events import IMPRESSION, encode_fields
from tracker.models import connect, create_tables
from tracker.streams import Layout, ensure_groups

MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/").rstrip("/")
ADS = 1_000
TS = 1_795_500_000
POLL_S = 0.05


def machine() -> str:
    load = os.getloadavg()
    return f"{platform.node()}: {os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}"


def preload(client: redis.Redis, layout: Layout, events: int) -> None:
    ensure_groups(client, layout)
    pipe = client.pipeline(transaction=False)
    for i in range(events):
        ad_id = 1 + i % ADS
        pipe.xadd(layout.shard_for(IMPRESSION, ad_id).key, encode_fields(ad_id, TS))
        if len(pipe) == 5_000:
            pipe.execute()
    pipe.execute()


def applied(db) -> int:
    db.close()  # a fresh connection sees the latest commits
    return int(db.execute_sql("SELECT COALESCE(SUM(applied), 0) FROM stream_offsets").fetchone()[0])


def drain_rate(shards: int, processes: int, threads: int, events: int, workdir: Path) -> float:
    with private_redis() as redis_url:
        return _drain_rate(redis_url, shards, processes, threads, events, workdir)


def _drain_rate(redis_url: str, shards: int, processes: int, threads: int, events: int, workdir: Path) -> float:
    client = redis.Redis.from_url(redis_url)
    schema = f"tracker_bench_{secrets.token_hex(4)}"
    server = connect(f"{MYSQL_URL}/mysql")
    server.execute_sql(f"CREATE DATABASE `{schema}`")
    db = connect(f"{MYSQL_URL}/{schema}")
    create_tables(db)
    try:
        preload(client, Layout("", shards), events)
        env = tracker_env(redis_url, f"{MYSQL_URL}/{schema}", shards=shards, log_level="WARNING",
                          broker_namespace=f"bench-{schema}")
        process = worker(env, workdir / f"drain-{shards}-{processes}.log", processes=processes, threads=threads)
        try:
            return _time_drain(db, events)
        finally:
            process.stop()
    finally:
        db.close()
        server.execute_sql(f"DROP DATABASE `{schema}`")
        server.close()
        client.close()


def _time_drain(db, events: int) -> float:
    first = wait_until(lambda: (n := applied(db)) and (time.monotonic(), n), 120, POLL_S, "the first commit")
    last = wait_until(lambda: (n := applied(db)) >= events and (time.monotonic(), n), 600, POLL_S, "the drain")
    return (last[1] - first[1]) / max(last[0] - first[0], POLL_S)


def ingest_rate(processes: int, seconds: int, workdir: Path) -> float:
    with private_redis() as redis_url:
        return _ingest_rate(redis_url, processes, seconds, workdir)


def _ingest_rate(redis_url: str, processes: int, seconds: int, workdir: Path) -> float:
    port = free_port()
    env = tracker_env(redis_url, f"sqlite:///{workdir / 'ingest.db'}", log_level="WARNING")
    web = Process([TRACKER, "serve", "--port", str(port), "--processes", str(processes)], env,
                  workdir / f"ingest-{processes}.log").start()
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 30, message="tracker serve")
        url = f"http://127.0.0.1:{port}/v1/impressions?ad_id=7"
        _wrk(url, 1)
        return _wrk(url, seconds)
    finally:
        web.stop()


def _wrk(url: str, seconds: int) -> float:
    done = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", url], capture_output=True, text=True,
                          timeout=seconds + 30)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error answers:\n{done.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per drain run")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per ingest run")
    parser.add_argument("--threads", type=int, default=8, help="worker threads per process (Dramatiq's default)")
    parser.add_argument("--skip-ingest", action="store_true", help="measure the drain only")
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-scaling-{secrets.token_hex(3)}"
    workdir.mkdir(parents=True)
    print(f"# {machine()}")
    for shards, processes in ((1, 1), (1, 2), (4, 1), (4, 2)):
        rate = drain_rate(shards, processes, args.threads, args.events, workdir)
        print(f"drain  shards={shards} worker_processes={processes} threads={args.threads}: {rate:>9,.0f} events/s",
              flush=True)
    if args.skip_ingest:
        pass
    elif shutil.which("wrk"):
        for processes in (1, 2):
            rate = ingest_rate(processes, args.seconds, workdir)
            print(f"ingest web_processes={processes}: {rate:>9,.0f} requests/s", flush=True)
    else:
        print("ingest: skipped, wrk is not installed", file=sys.stderr)
    print(f"# after: {machine()}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
