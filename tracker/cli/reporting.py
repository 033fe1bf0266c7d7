"""`tracker stats` (counts and CTR) and `tracker status` (the state of every stream shard)."""

from __future__ import annotations

import argparse
import datetime
import json

from ..config import Settings
from ..reports import DEFAULT_ADS, Query, Reports
from ..runtime import Runtime
from ..queue_probe import dead_letter_probe
from ..status import ShardStatus, Status, StatusReader


def register(subparsers) -> None:
    stats = subparsers.add_parser("stats", help="print impressions, clicks and CTR per ad per day")
    stats.add_argument("--ad-id", type=int, action="append", default=[], help="an ad (repeatable; default: top ads)")
    stats.add_argument("--from", dest="start", type=datetime.date.fromisoformat, help="first day (YYYY-MM-DD)")
    stats.add_argument("--to", dest="end", type=datetime.date.fromisoformat, help="last day (default today)")
    stats.add_argument("--limit", type=int, default=DEFAULT_ADS, help="most ads to list without --ad-id")
    stats.add_argument("--json", action="store_true", help="print the report as JSON (as GET /v1/stats)")
    stats.set_defaults(func=cmd_stats)

    status = subparsers.add_parser("status", help="show each stream shard: length, lag, pending, offset")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    end = args.end or datetime.datetime.now(settings.tz).date()
    start = args.start or end - datetime.timedelta(days=6)
    try:
        query = Query(start, end, tuple(args.ad_id), args.limit)
    except ValueError as e:
        raise SystemExit(f"tracker stats: {e}") from None
    report = Reports(Runtime(settings).database).report(query)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _pct(ctr: float | None) -> str:
    return "-" if ctr is None else f"{ctr * 100:.2f}%"


def format_report(report: dict) -> str:
    lines = [f"{report['from']} .. {report['to']}",
             f"{'date':<12}{'ad':>12}{'impressions':>14}{'clicks':>10}{'CTR':>10}"]
    for ad in report["ads"]:
        for day in ad["days"]:
            lines.append(f"{day['date']:<12}{ad['ad_id']:>12}{day['impressions']:>14}{day['clicks']:>10}"
                         f"{_pct(day['ctr']):>10}")
    totals = report["totals"]
    lines.append(f"{'total':<12}{'':>12}{totals['impressions']:>14}{totals['clicks']:>10}{_pct(totals['ctr']):>10}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    runtime = Runtime(settings)
    probe = dead_letter_probe(settings, runtime.redis, runtime.redis_url)
    status = StatusReader(runtime.redis, runtime.database, runtime.layout.shards(), probe).read()
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(format_status(status))
    return 0


#: The columns of `tracker status`: (heading, ShardStatus field, how to show a value).
STATUS_COLUMNS = (
    ("stream", "stream", str),
    ("length", "length", str),
    ("lag", "lag", str),
    ("pending", "pending", str),
    ("oldest pending", "oldest_pending_age_ms", lambda ms: human_age(ms)),
    ("committed id", "committed_id", str),
    ("committed age", "committed_age_ms", lambda ms: human_age(ms)),
    ("applied", "applied", str),
    ("last drain", "last_drain_age_ms", None),
    ("dead letters", "dead_letters", str),
)


def format_status(status: Status) -> str:
    """The status as a table, one row per shard, ages in words; then the dead-letter queue."""
    rows = [[_cell(shard, field, show) for _, field, show in STATUS_COLUMNS] for shard in status.shards]
    headings = [heading for heading, _, _ in STATUS_COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headings)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headings, *rows]]
    dlq = status.dead_letter_queue
    if dlq is not None and dlq.messages is None:
        lines.append(f"\ndramatiq dead-letter queue {dlq.key}: cannot tell ({dlq.error})")
    elif dlq is not None:
        lines.append(f"\ndramatiq dead-letter queue {dlq.key}: {dlq.messages} message{'s' * (dlq.messages != 1)}")
    return "\n".join(lines)


def _cell(shard: ShardStatus, field: str, show) -> str:
    if field == "last_drain_age_ms":
        return _last_drain(shard)
    value = getattr(shard, field)
    return "-" if value is None else show(value)


def _last_drain(shard: ShardStatus) -> str:
    if shard.last_drain_age_ms is None:
        return "never"
    if shard.drain_running:
        return f"running for {human_age(shard.last_drain_age_ms)}"
    text = f"{human_age(shard.last_drain_age_ms)} ago"
    if shard.last_drain_result not in (None, "ok"):
        text += f" ({shard.last_drain_result})"
    return text


def human_age(ms: int) -> str:
    """An age for people: 850ms, 12.4s, 3m05s, 2h04m, 3d02h."""
    if ms < 1_000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f}s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86_400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"
