"""Footprint: Redis memory per pending event; RSS of web and worker processes under ingest load.

Redis: `--events` events are stored through the tracker's own Producer into a private
redis-server; `used_memory` before and after gives the memory per stored, not yet counted
event. Reading them into the consumer group's pending list without acknowledging them (as a
drain does before its commit) gives the extra memory of a read-but-unacknowledged entry.

Processes: `tracker serve --processes N` takes the ingest load (wrk, `--duration` seconds,
at full speed) while `dramatiq tracker.tasks` (its defaults: a process per CPU, 8 threads
each) drains it into MariaDB; then `--events` events are stored at once, and the worker
drains that backlog in its largest transactions. The RSS of every process is sampled every
SAMPLE_S throughout, and the largest value per process is reported.
"""

from __future__ import annotations

import tempfile
import threading
import time

import redis

from tracker.events import IMPRESSION
from tracker.streams import DRAIN_CONSUMER, Layout, NewEvent, Producer, ensure_groups

from . import procs, report
from .load import Load
from .services import DEFAULT_MYSQL_URL, mysql_schema, private_redis, redis_version

SAMPLE_S = 0.5
WORKER_RSS_TARGET_MB = 150
#: Events stored per pipeline while measuring Redis memory.
CHUNK = 5_000


def redis_memory(url: str, events: int) -> tuple[float, float]:
    """(bytes per stored event, extra bytes per read-but-unacknowledged event)."""
    client = redis.Redis.from_url(url)
    layout = Layout()
    ensure_groups(client, layout)
    producer = Producer(client, layout)
    before = client.info("memory")["used_memory"]
    now = int(time.time())
    for start in range(0, events, CHUNK):
        producer.store([NewEvent(IMPRESSION, i % 10_000 + 1, now) for i in range(start, min(events, start + CHUNK))])
    stored = client.info("memory")["used_memory"]
    shard = layout.shard(IMPRESSION, 0)
    while client.xreadgroup(shard.group, DRAIN_CONSUMER, {shard.key: ">"}, count=CHUNK):
        pass
    pending = client.info("memory")["used_memory"]
    client.flushdb()
    client.close()
    return (stored - before) / events, (pending - stored) / events


class RssSampler(threading.Thread):
    """The largest RSS seen of each process of some process groups."""

    def __init__(self, groups: dict[str, procs.Group]):
        super().__init__(daemon=True)
        self.groups = groups
        self.peak: dict[tuple[str, int], int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            for name, group in self.groups.items():
                for pid in group.pids():
                    key = (name, pid)
                    self.peak[key] = max(self.peak.get(key, 0), procs.rss_kib(pid))

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def run(args) -> None:
    report.header("footprint", {
        "redis": f"{args.events:,} events stored with the tracker's Producer into a private redis-server",
        "load": f"wrk at full speed on tracker serve --processes {args.processes} for {args.duration:g}s, "
                f"while dramatiq tracker.tasks (defaults) drains it; then a backlog of {args.events:,} events",
    })
    targets = []
    with private_redis() as redis_url:
        per_event, per_pending = redis_memory(redis_url, args.events)
        print(f"redis {redis_version(redis_url)}: {per_event:,.0f} bytes per stored event; "
              f"+{per_pending:,.0f} bytes while read and not yet acknowledged")
    worker_peaks: list[float] = []
    for run_no in range(1, args.runs + 1):
        peaks = one_run(args)
        for (name, pid), kib in sorted(peaks.items()):
            print(f"  run {run_no}  {name:<7} pid {pid:<8} max RSS {kib / 1024:6.1f} MB")
        worker_peaks.append(max(kib for (name, _), kib in peaks.items() if name == "worker") / 1024)
    series = report.Series("largest worker process RSS", "MB", worker_peaks)
    report.table([series])
    targets.append(report.Target("worker RSS (MB)", series.median, WORKER_RSS_TARGET_MB, at_least=False))
    report.verdicts(targets)


def one_run(args) -> dict[tuple[str, int], int]:
    with private_redis() as redis_url, mysql_schema(args.mysql_url or DEFAULT_MYSQL_URL) as db_url, \
            tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        env = procs.tracker_env(redis_url, db_url, tmp)
        worker = procs.Group([str(procs.BIN / "dramatiq"), "tracker.tasks"], env, procs.Path(tmp) / "worker.log")
        try:
            with procs.server(procs.tracker_serve(args.processes), env, "footprint-web") as (port, web):
                sampler = RssSampler({"web": web, "worker": worker})
                sampler.start()
                result = Load("/track_impression.php?ad_id=", args.connections, args.load_threads).run(
                    port, args.duration, force_python=args.python_load)
                time.sleep(2)  # the worker catches up with the last events
            backlog_s = drain_backlog(redis_url, args.events)
            sampler.stop()
        finally:
            worker.stop()
    print(f"  load: {result.rate:,.0f} requests/s for {result.duration_s:.1f}s, {result.failures} failures; "
          f"then a backlog of {args.events:,} events drained in {backlog_s:.1f}s")
    return sampler.peak


def drain_backlog(redis_url: str, events: int, timeout_s: float = 120) -> float:
    """Store `events` at once and wait until the worker has read and acknowledged all of them:
    the worker's largest transactions (TRACKER_BATCH_SIZE x TRACKER_READS_PER_COMMIT)."""
    client = redis.Redis.from_url(redis_url)
    producer = Producer(client, Layout())
    now = int(time.time())
    started = time.monotonic()
    for start in range(0, events, CHUNK):
        producer.store([NewEvent(IMPRESSION, i % 10_000 + 1, now) for i in range(start, min(events, start + CHUNK))])
    shard = Layout().shard(IMPRESSION, 0)
    while time.monotonic() - started < timeout_s:
        group = next(g for g in client.xinfo_groups(shard.key) if g["name"] == shard.group.encode())
        if not group["pending"] and group.get("lag") == 0:
            break
        time.sleep(0.2)
    client.close()
    return time.monotonic() - started
