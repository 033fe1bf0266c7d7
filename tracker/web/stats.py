"""GET /v1/stats: impressions, clicks and CTR per ad per day, with totals.

    /v1/stats?ad_id=7&from=2026-11-01&to=2026-11-24
    /v1/stats?ad_id=7,8&ad_id=9          several ads (repeated, or comma-separated)
    /v1/stats?limit=20                   no ad_id: the 20 most seen ads, totals over all ads
    /v1/stats?range=30d                  the 30 days ending today (also today, yesterday, <N>d)
    /v1/stats.csv?range=30d[&by=day]     the same report as CSV: per ad per day, or daily totals

`from` and `to` are dates in the reporting timezone, both included; by default the last 7 days.
"""

from __future__ import annotations

import csv
import datetime
import io
from zoneinfo import ZoneInfo

from bottle import Bottle, HTTPResponse, request

from ..errors import InvalidEvent, StorageError
from ..events import AD_ID_DETAIL, parse_ad_id
from ..reports import DEFAULT_ADS, Query, Reports, range_dates
from .responses import CORS_HEADERS, ApiError, json_response, preflight_response

#: Days covered when no `from` is given.
DEFAULT_DAYS = 7


def parse_date(name: str, default: datetime.date) -> datetime.date:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"Invalid '{name}' date", "use YYYY-MM-DD") from None


def parse_ad_ids() -> tuple[int, ...]:
    raw = [part for value in request.query.getall("ad_id") for part in value.split(",") if part.strip()]
    try:
        return tuple(parse_ad_id(part.strip()) for part in raw)
    except InvalidEvent:
        raise ApiError(400, "Invalid ad_id", AD_ID_DETAIL) from None


def parse_dates(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The report's first and last day: `range=`, or `from`/`to` (never both)."""
    try:
        return _parse_dates(today)
    except OverflowError:  # e.g. to=0001-01-01: the default start would fall before year 1
        raise ApiError(400, "Invalid report range", "dates out of range") from None


def _parse_dates(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    name = request.query.get("range")
    if not name:
        end = parse_date("to", today)
        return parse_date("from", end - datetime.timedelta(days=DEFAULT_DAYS - 1)), end
    if request.query.get("from") or request.query.get("to"):
        raise ApiError(400, "Invalid report range", "give either 'range' or 'from'/'to', not both")
    try:
        return range_dates(name, today)
    except ValueError as e:
        raise ApiError(400, "Invalid report range", str(e)) from None


def parse_query(tz: ZoneInfo, default_limit: int = DEFAULT_ADS) -> Query:
    start, end = parse_dates(datetime.datetime.now(tz).date())
    limit = request.query.get("limit") or str(default_limit)
    if not limit.isdigit():
        raise ApiError(400, "Invalid limit", "a whole number")
    try:
        return Query(start, end, parse_ad_ids(), int(limit))
    except ValueError as e:
        raise ApiError(400, "Invalid report range", str(e)) from None


class StatsApi:
    def __init__(self, reports: Reports, tz: ZoneInfo, timezone_name: str):
        self.reports = reports
        self.tz = tz
        self.timezone_name = timezone_name

    def register(self, app: Bottle) -> None:
        app.route("/v1/stats", "GET", self.stats)
        app.route("/v1/stats", "OPTIONS", preflight_response)
        app.route("/v1/stats.csv", "GET", self.stats_csv)

    def report(self, default_limit: int = DEFAULT_ADS) -> dict:
        """The report the request asks for; ApiError(400) for a bad query, (503) without a database."""
        query = parse_query(self.tz, default_limit)
        try:
            return {"timezone": self.timezone_name, **self.reports.report(query)}
        except StorageError:
            raise ApiError(503, "Database unavailable, retry later", None, {"Retry-After": "5"}) from None

    def stats(self):
        try:
            report = self.report()
        except ApiError as e:
            return e.response()
        return json_response(report, headers={"Cache-Control": "no-store"})

    def stats_csv(self):
        try:
            by = request.query.get("by") or "ad"
            if by not in CSV_LAYOUTS:
                raise ApiError(400, "Invalid 'by'", "by=ad (rows per ad per day) or by=day (daily totals)")
            report = self.report()
        except ApiError as e:
            return e.response()
        filename = f"ad-stats-{report['from']}-to-{report['to']}{'-daily' if by == 'day' else ''}.csv"
        return HTTPResponse(report_csv(report, by), 200, {
            **CORS_HEADERS, "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{filename}"'})


#: CSV layouts of a report: `by=ad` lists each ad's days, `by=day` the daily totals over the ads.
CSV_LAYOUTS = {"ad": ("date", "ad_id", "impressions", "clicks", "ctr"),
               "day": ("date", "impressions", "clicks", "ctr")}


def report_csv(report: dict, by: str) -> str:
    """The report as CSV text; an empty `ctr` means no impressions."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_LAYOUTS[by])
    if by == "day":
        rows = [(d["date"], d["impressions"], d["clicks"], d["ctr"]) for d in report["days"]]
    else:
        rows = [(d["date"], ad["ad_id"], d["impressions"], d["clicks"], d["ctr"])
                for ad in report["ads"] for d in ad["days"]]
    writer.writerows(tuple("" if value is None else value for value in row) for row in rows)
    return out.getvalue()
