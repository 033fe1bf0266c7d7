"""`tracker sign-click` (a signed /c link) and `tracker filtered` (what was not counted, and why)."""

from __future__ import annotations

import argparse
import datetime
import json

from ..config import Settings
from ..errors import ConfigurationError, InvalidEvent, InvalidLink
from ..events import INVALID_AD_ID, parse_ad_id
from ..filtered import REASONS, FilteredCounts, totals
from ..runtime import Runtime
from ..signing import ClickSigner


def register(subparsers) -> None:
    sign = subparsers.add_parser("sign-click", help="print a signed click link (/c) for an ad and a target URL")
    sign.add_argument("--ad-id", required=True, help="the ad")
    sign.add_argument("--url", required=True, help="where the click goes: an http(s) URL")
    sign.add_argument("--base-url", default=None,
                      help="the tracker's public address (default TRACKER_PUBLIC_URL, else http://HOST:PORT)")
    sign.set_defaults(func=cmd_sign_click)

    filtered = subparsers.add_parser("filtered", help="print the impressions and clicks not counted, per day and reason")
    filtered.add_argument("--from", dest="start", type=datetime.date.fromisoformat, help="first day (YYYY-MM-DD)")
    filtered.add_argument("--to", dest="end", type=datetime.date.fromisoformat, help="last day (default today)")
    filtered.add_argument("--json", action="store_true", help="print JSON (as GET /v1/filtered)")
    filtered.set_defaults(func=cmd_filtered)


def cmd_sign_click(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.click_secret:
        raise ConfigurationError("TRACKER_CLICK_SECRET is not set: there is no key to sign with")
    try:
        ad_id = parse_ad_id(args.ad_id)
    except InvalidEvent:
        raise SystemExit(f"tracker sign-click: {INVALID_AD_ID}") from None
    base = args.base_url or settings.link_base_url
    try:
        print(ClickSigner(settings.click_secret).link(base, ad_id, args.url))
    except InvalidLink as e:
        raise SystemExit(f"tracker sign-click: {e.message}") from None
    return 0


def cmd_filtered(args: argparse.Namespace, settings: Settings) -> int:
    end = args.end or datetime.datetime.now(settings.tz).date()
    start = args.start or end - datetime.timedelta(days=6)
    days = [start + datetime.timedelta(days=i) for i in range((end - start).days + 1)]
    runtime = Runtime(settings)
    counts = FilteredCounts(runtime.redis, settings.namespace).read(days)
    if args.json:
        print(json.dumps({"from": start.isoformat(), "to": end.isoformat(), "totals": totals(counts), "days": counts},
                         indent=2))
        return 0
    print(format_filtered(counts))
    return 0


def format_filtered(days: list[dict]) -> str:
    columns = [f"{kind}:{reason}" for kind in ("impressions", "clicks") for reason in REASONS]
    lines = [f"{'date':<12}" + "".join(f"{c:>22}" for c in columns)]
    for day in days + [{"date": "total", **totals(days)}]:
        values = [day[c.split(":")[0]][c.split(":")[1]] for c in columns]
        lines.append(f"{day['date']:<12}" + "".join(f"{v:>22}" for v in values))
    return "\n".join(lines)
