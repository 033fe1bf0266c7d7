"""`tracker stats` (counts and CTR) and `tracker status` (the state of every stream shard)."""

from __future__ import annotations

import argparse
import datetime
import json

from ..config import Settings
from ..reports import DEFAULT_ADS, Query, Reports
from ..runtime import Runtime
from ..status import all_status


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
    rows = [s.as_dict() for s in all_status(runtime.redis, runtime.ledger, runtime.layout)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = ("stream", "length", "lag", "pending", "oldest_pending_age_ms", "committed_id",
               "committed_age_ms", "applied", "dead_letters")
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(str("-" if row[c] is None else row[c]).ljust(w) for c, w in zip(columns, widths)))
    return 0
