"""Freshness: how long after its 200 an event is visible in MariaDB, under a steady load.

`tracker serve` and `dramatiq tracker.tasks` (both with their defaults) run on a private
redis-server and MariaDB schema. A Python client sends `--rate` single-event requests per
second for `--seconds` seconds, at fixed times (open loop, keep-alive connections), and keeps
each answer's time and stream ID. Meanwhile a poller reads the shard's committed offset from
MariaDB every POLL_MS: the offset commits in the same transaction as the counts, so an event
is visible exactly when the offset reaches its ID. An event's freshness is the first poll
that saw it minus the time its 200 arrived (0 when it was visible before its answer arrived).
At the end every answered event must be counted, exactly once.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import tempfile
import threading
import time
import urllib.parse

import pymysql

from tracker.aggregate import parse_id
from tracker.events import IMPRESSION

from . import procs, report
from .services import DEFAULT_MYSQL_URL, mysql_schema, private_redis

#: How often the committed offset is read (ms): the resolution of the figures.
POLL_MS = 5
#: Keep-alive connections of the client.
CONNECTIONS = 20
#: Seconds to wait, after the load, for the last events to be counted.
SETTLE_S = 30
#: Ad ids the requests cycle through.
ADS = 1000


class OffsetPoller(threading.Thread):
    """Samples (monotonic time, committed offset of a stream) every POLL_MS."""

    def __init__(self, db_url: str, stream: str):
        super().__init__(daemon=True)
        parts = urllib.parse.urlsplit(db_url)
        self.connection = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                                          password=parts.password or "", database=parts.path.lstrip("/"),
                                          autocommit=True)
        self.stream = stream
        self.times: list[float] = []
        self.offsets: list[tuple[int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.connection.cursor() as cursor:
            while not self.stopped.wait(POLL_MS / 1000):
                cursor.execute("SELECT last_ms, last_seq FROM stream_offsets WHERE stream = %s", (self.stream,))
                row = cursor.fetchone()
                self.times.append(time.monotonic())
                self.offsets.append((row[0], row[1]) if row else (0, 0))

    def visible_at(self, stream_id: tuple[int, int], after: int = 0) -> float | None:
        """The first sample at which the offset reached `stream_id` (offsets only grow)."""
        i = bisect.bisect_left(self.offsets, stream_id, lo=after)
        return self.times[i] if i < len(self.times) else None

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)
        self.connection.close()


async def steady_load(port: int, rate: int, seconds: float) -> tuple[list[tuple[float, str]], int]:
    """Send rate*seconds GETs at fixed times; returns [(time of the 200, stream ID)] and failures."""
    total = int(rate * seconds)
    answered: list[tuple[float, str]] = []
    failures = [0]
    start = time.monotonic() + 0.2

    async def connection(slot: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in range(slot, total, CONNECTIONS):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(f"GET /track_impression.php?ad_id={i % ADS + 1} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                status, body = await read_response(reader)
                if status == 200:
                    answered.append((time.monotonic(), json.loads(body)["stream_id"]))
                else:
                    failures[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(slot) for slot in range(CONNECTIONS)))
    return answered, failures[0]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:")), 0)
    return int(lines[0].split()[1]), await reader.readexactly(length)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(args) -> None:
    report.header("freshness", {
        "load": f"{args.rate:,} single-event requests/s for {args.seconds:g}s (Python client, {CONNECTIONS} "
                f"keep-alive connections, open loop), {args.runs} runs",
        "system": "tracker serve and dramatiq tracker.tasks, with their default settings",
        "measure": f"time from the 200 to the committed offset reaching the event's ID (polled every {POLL_MS} ms)",
    })
    p50s, p99s = report.Series("freshness p50", "ms"), report.Series("freshness p99", "ms")
    maxes = report.Series("freshness max", "ms")
    for run_no in range(1, args.runs + 1):
        latencies = one_run(args)
        p50s.add(percentile(latencies, 0.50) * 1000)
        p99s.add(percentile(latencies, 0.99) * 1000)
        maxes.add(latencies[-1] * 1000)
        print(f"  run {run_no}  {len(latencies):,} events   p50 {p50s.values[-1]:7.1f} ms   p99 {p99s.values[-1]:7.1f} ms"
              f"   max {maxes.values[-1]:7.1f} ms", flush=True)
    report.table([p50s, p99s, maxes])
    report.verdicts([report.Target("freshness p50", p50s.median / 1000, 1.2, at_least=False, unit=" s"),
                     report.Target("freshness p99", p99s.median / 1000, 2.0, at_least=False, unit=" s")])


def one_run(args) -> list[float]:
    with private_redis() as redis_url, mysql_schema(args.mysql_url or DEFAULT_MYSQL_URL) as db_url, \
            tempfile.TemporaryDirectory(prefix="bench-fresh-") as tmp:
        env = procs.tracker_env(redis_url, db_url, tmp)
        worker = procs.Group([str(procs.BIN / "dramatiq"), "tracker.tasks"], env, procs.Path(tmp) / "worker.log")
        try:
            with procs.server(procs.tracker_serve(1), env, "fresh-web") as (port, _):
                wait_for_first_drain(db_url, port, worker)
                poller = OffsetPoller(db_url, IMPRESSION.stream)
                poller.start()
                answered, failures = asyncio.run(steady_load(port, args.rate, args.seconds))
                last = max(parse_id(stream_id) for _, stream_id in answered)
                deadline = time.monotonic() + SETTLE_S
                while (not poller.offsets or poller.offsets[-1] < last) and time.monotonic() < deadline:
                    time.sleep(0.1)
                poller.stop()
        finally:
            worker.stop()
        check_counted(db_url, len(answered) + 1, failures)  # +1: the warm-up event
    latencies = []
    for answered_at, stream_id in answered:
        seen = poller.visible_at(parse_id(stream_id))
        if seen is None:
            raise SystemExit(f"event {stream_id} was not counted within {SETTLE_S}s of the end: the run is void")
        latencies.append(max(0.0, seen - answered_at))
    return sorted(latencies)


def wait_for_first_drain(db_url: str, port: int, worker: procs.Group) -> None:
    """Send one event and wait until it is counted: the worker is up and its tick is leading."""
    import urllib.request  # noqa: PLC0415
    urllib.request.urlopen(f"http://127.0.0.1:{port}/track_impression.php?ad_id=1", timeout=5).read()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if total_counted(db_url) >= 1:
            return
        if not worker.alive:
            raise SystemExit(f"the worker exited:\n{worker.log()}")
        time.sleep(0.2)
    raise SystemExit(f"the worker counted nothing within 60s:\n{worker.log()}")


def total_counted(db_url: str) -> int:
    parts = urllib.parse.urlsplit(db_url)
    connection = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                                 password=parts.password or "", database=parts.path.lstrip("/"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COALESCE(SUM(impressions), 0) FROM ad_daily_impressions")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def check_counted(db_url: str, answered: int, failures: int) -> None:
    counted = total_counted(db_url)
    if failures or counted != answered:
        raise SystemExit(f"{answered:,} events answered 200 ({failures} failures), {counted:,} counted: "
                         "the run is void")
    print(f"  every answered event counted exactly once ({counted:,})", flush=True)
