"""GET /stats: impressions, clicks and CTR over days, in total and per ad, with charts.

The page is rendered on the server, charts included (`charts.py`, inline SVG): it loads no
script and nothing from another host, so it works in deployments without internet access.
It takes the query of `GET /v1/stats` (`range`, `from`, `to`, `ad_id`, `limit`) and links to
the same report as CSV.
"""

from __future__ import annotations

import datetime
import urllib.parse
from pathlib import Path

from bottle import Bottle, HTTPResponse, SimpleTemplate, request

from ..reports import RANGES
from .charts import daily_chart, sparkline
from .responses import ApiError
from .stats import StatsApi

VIEWS = Path(__file__).resolve().parent / "views"
#: Ads listed on the page when the query names no `limit`.
PAGE_ADS = 20
RANGE_LABELS = {"today": "Today", "7d": "7 days", "30d": "30 days", "90d": "90 days"}
#: Nothing but this page's own inline styles may load: no scripts, no fonts, no other hosts.
HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                      "form-action 'self'; base-uri 'none'; frame-ancestors 'self'"}
COLORS = {"impressions": "#2f6fde", "clicks": "#e0672c", "ctr": "#2b8a3e"}


def percent(ctr: float | None) -> str:
    return "–" if ctr is None else f"{ctr * 100:.2f} %"


def count(value: float) -> str:
    return f"{int(value):,}"


def short_date(iso: str) -> str:
    return datetime.date.fromisoformat(iso).strftime("%b %d")


class StatsPage:
    def __init__(self, api: StatsApi):
        self.api = api
        self.template = SimpleTemplate(source=(VIEWS / "stats.tpl").read_text())

    def register(self, app: Bottle) -> None:
        app.route("/stats", "GET", self.page)

    def page(self):
        try:
            report, status, error = self.api.report(default_limit=PAGE_ADS), 200, None
        except ApiError as e:
            report, status, error = None, e.status, f"{e.message}: {e.detail}" if e.detail else e.message
        html = self.template.render(error=error, report=report, **self.navigation(),
                                    **(self.view(report) if report else {}))
        return HTTPResponse(html, status, HEADERS)

    def navigation(self) -> dict:
        """Links to the named ranges and to the CSV export, keeping the ads asked for."""
        keep = {name: request.query.get(name) for name in ("ad_id", "limit") if request.query.get(name)}
        current = {k: v for k, v in request.query.items() if k in ("range", "from", "to", "ad_id", "limit")}
        if not any(k in current for k in ("range", "from", "to")):
            current["range"] = "7d"  # the API's default span, named
        return {
            "ranges": [(RANGE_LABELS[name], "/stats?" + urllib.parse.urlencode({"range": name, **keep}),
                        current.get("range") == name) for name in RANGES],
            "json": "/v1/stats?" + urllib.parse.urlencode(current),
            "csv_by_ad": "/v1/stats.csv?" + urllib.parse.urlencode(current),
            "csv_by_day": "/v1/stats.csv?" + urllib.parse.urlencode({**current, "by": "day"}),
            "query": {name: request.query.get(name, "") for name in ("from", "to", "ad_id", "limit")},
        }

    @staticmethod
    def view(report: dict) -> dict:
        days = report["days"]
        labels = [short_date(d["date"]) for d in days]
        charts = [
            daily_chart("Impressions per day", labels, [d["impressions"] for d in days],
                        color=COLORS["impressions"], fmt=count),
            daily_chart("Clicks per day", labels, [d["clicks"] for d in days], color=COLORS["clicks"], fmt=count),
            daily_chart("CTR per day", labels, [d["ctr"] for d in days], color=COLORS["ctr"], style="line",
                        integer=False, fmt=lambda v: f"{v * 100:.3g} %"),
        ]
        return {"charts": zip(("Impressions", "Clicks", "CTR"), charts), "ads": ad_rows(report)}


def ad_rows(report: dict) -> list[dict]:
    """The table of top ads: counts, share of all impressions, and a daily trend line."""
    total = report["totals"]["impressions"]
    dates = [d["date"] for d in report["days"]]
    rows = []
    for rank, ad in enumerate(report["ads"], 1):
        per_day = {d["date"]: d["impressions"] for d in ad["days"]}
        share = ad["impressions"] / total if total else 0
        rows.append({
            "rank": rank, "ad_id": ad["ad_id"], "impressions": count(ad["impressions"]),
            "clicks": count(ad["clicks"]), "ctr": percent(ad["ctr"]), "share": f"{share * 100:.1f}",
            "trend": sparkline([per_day.get(day, 0) for day in dates], color=COLORS["impressions"],
                               label=f"impressions of ad {ad['ad_id']} per day"),
        })
    return rows
