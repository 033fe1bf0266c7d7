"""Ingest: requests/s, events/s and latency of the real HTTP server, against two baselines.

    ours   `tracker serve --processes N` (its defaults), GET /track_impression.php?ad_id=...
           and again with TRACKER_GROUP_COMMIT=0
    (i)    a bare Bottle route returning a dict, served exactly as ours (same waitress settings,
           same N processes, same serving code)
    (ii)   a naive handler doing one XADD per request, in one waitress process
    batch  `tracker serve`, POST /v1/events with 100 events per request

All get the same load (wrk: keep-alive, 32 connections, `--duration` seconds), in interleaved
rounds so that the machine's noise hits each alike. Ours must answer 200s only, and every 200 it
answered must be in the stream afterwards.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass

import redis

from . import procs, report
from .load import Load, LoadResult, ensure_wrk
from .services import private_redis, redis_version
from tracker.config import DEFAULT_WEB_THREADS

SINGLE_PATH = "/track_impression.php?ad_id="
BATCH_PATH = "/v1/events"
BATCH_EVENTS = 100
#: Seconds of load before each measured run (connections opened, caches warm).
WARMUP_S = 1.0


@dataclass
class Contender:
    name: str
    argv: list[str]
    load: Load
    events_per_request: int = 1
    env: dict | None = None  # extra environment (ours and (i) share the waitress settings)


def batch_body(n: int = BATCH_EVENTS) -> bytes:
    """A POST /v1/events body: `n` impressions and clicks over a few ads, without event ids."""
    events = [{"type": "impression" if i % 10 else "click", "ad_id": i % 50 + 1} for i in range(n)]
    return json.dumps(events).encode()


def contenders(args) -> list[Contender]:
    single = Load(SINGLE_PATH, args.connections, args.load_threads)
    served = {"TRACKER_WEB_THREADS": str(args.threads)} if args.threads else {}
    found = [
        Contender("ours", procs.tracker_serve(args.processes), single, env=served),
        Contender("ours, no group commit", procs.tracker_serve(args.processes), single,
                  env={**served, "TRACKER_GROUP_COMMIT": "0"}),
        Contender("(i) bare route", procs.baseline("bare", args.processes), single, env=served),
        Contender("(ii) naive XADD", procs.baseline("naive", 1), single),
        Contender("ours, batch", procs.tracker_serve(args.processes),
                  Load(BATCH_PATH, args.connections, args.load_threads, body=batch_body()), BATCH_EVENTS, env=served),
        Contender("ours, batch, event ids", procs.tracker_serve(args.processes),
                  Load(BATCH_PATH, args.connections, args.load_threads, unique_batches=BATCH_EVENTS),
                  BATCH_EVENTS, env=served),
    ]
    if args.only:
        found = [c for c in found if c.name.startswith(tuple(args.only))]
    return found


def run(args) -> None:
    wrk = ensure_wrk() and not args.python_load
    report.header("ingest", {
        "load": f"{'wrk' if wrk else 'python asyncio client'}, {args.connections} keep-alive connections, "
                f"{args.duration:g}s per run after {WARMUP_S:g}s warm-up, {args.runs} interleaved rounds",
        "ours": f"tracker serve --processes {args.processes}, {args.threads or DEFAULT_WEB_THREADS} waitress threads "
                f"each; (i) the same; (ii) 1 process, {DEFAULT_WEB_THREADS} threads",
        "batch": f"POST {BATCH_PATH}, {BATCH_EVENTS} events per request, without event ids and with a new "
                 "event_id each (stored through the dedupe script)",
    })
    with private_redis() as redis_url, tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        print(f"redis:    private redis-server {redis_version(redis_url)}, appendonly, appendfsync always, noeviction")
        env = procs.tracker_env(redis_url, f"sqlite:///{tmp}/tracker.db", tmp)
        env["PYTHONPATH"] = os.getcwd()
        client = redis.Redis.from_url(redis_url)
        series = measure(contenders(args), env, client, args)
    summarize(series)


def measure(found: list[Contender], env: dict, client: redis.Redis, args) -> dict[str, dict[str, report.Series]]:
    series = {c.name: {"rps": report.Series(f"{c.name} requests/s", "req/s"),
                       "eps": report.Series(f"{c.name} events/s", "ev/s"),
                       "p50": report.Series(f"{c.name} p50", "µs"),
                       "p99": report.Series(f"{c.name} p99", "µs")} for c in found}
    for round_no in range(1, args.runs + 1):
        for contender in found:
            result = run_one(contender, env, client, args)
            s = series[contender.name]
            s["rps"].add(result.rate)
            s["eps"].add(result.rate * contender.events_per_request)
            s["p50"].add(result.p50_ms * 1000)
            s["p99"].add(result.p99_ms * 1000)
            print(f"  round {round_no}  {contender.name:<23} {result.rate:>9,.0f} req/s "
                  f"{result.rate * contender.events_per_request:>10,.0f} events/s   p50 {result.p50_ms:6.2f} ms   "
                  f"p99 {result.p99_ms:6.2f} ms   failures {result.failures}", flush=True)
    return series


def run_one(contender: Contender, env: dict, client: redis.Redis, args) -> LoadResult:
    client.flushdb()
    env = {**env, **(contender.env or {})}
    with procs.server(contender.argv, env, contender.name.split()[0].strip("()")) as (port, _):
        contender.load.run(port, WARMUP_S, force_python=args.python_load)
        before = stored(client)
        result = contender.load.run(port, args.duration, force_python=args.python_load)
        time.sleep(0.2)
        if contender.name.startswith("ours"):
            check_stored(contender, result, stored(client) - before)
    return result


def stored(client: redis.Redis) -> int:
    return sum(client.xlen(key) for key in client.scan_iter(match="*_stream*", _type="stream"))


def check_stored(contender: Contender, result: LoadResult, count: int) -> None:
    """Every 200 is an event in Redis: the stream grew by at least the events answered."""
    answered = result.requests * contender.events_per_request
    if result.failures or count < answered:
        raise SystemExit(f"{contender.name}: {result.failures} failed requests, {answered:,} events answered "
                         f"200 but {count:,} stored: the benchmark is void")


def summarize(series: dict) -> None:
    print("medians:")
    report.table([s for per in series.values() for s in per.values()])
    if not {"ours", "(i) bare route", "(ii) naive XADD"} <= series.keys():
        return  # --only left out what the ratios need
    ours = series["ours"]["rps"].median
    bare = series["(i) bare route"]["rps"].median
    naive = series["(ii) naive XADD"]["rps"].median
    print(f"ratios:   ours / (i) bare route = {ours / bare:.2f}    ours / (ii) naive XADD = {ours / naive:.2f}")
    targets = [report.Target("single-event ingest / (ii) naive XADD", ours / naive, 3.0, unit="x"),
               report.Target("single-event ingest / (i) bare route", ours / bare, 0.75, unit="x")]
    if "ours, batch" in series:
        targets.append(report.Target("batch ingest events/s", series["ours, batch"]["eps"].median, 100_000))
    report.verdicts(targets)
