"""GET /v1/stats: impressions, clicks and CTR per ad per day, with totals.

    /v1/stats?ad_id=7&from=2026-11-01&to=2026-11-24
    /v1/stats?ad_id=7,8&ad_id=9          several ads (repeated, or comma-separated)
    /v1/stats?limit=20                   no ad_id: the 20 most seen ads, totals over all ads

`from` and `to` are dates in the reporting timezone, both included; by default the last 7 days.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from bottle import Bottle, request

from ..errors import InvalidEvent, StorageError
from ..events import parse_ad_id
from ..reports import DEFAULT_ADS, Query, Reports
from .responses import ApiError, json_response, preflight_response

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
        raise ApiError(400, "Invalid ad_id", "ad ids are whole numbers from 1 to 2147483647") from None


def parse_query(tz: ZoneInfo) -> Query:
    today = datetime.datetime.now(tz).date()
    end = parse_date("to", today)
    start = parse_date("from", end - datetime.timedelta(days=DEFAULT_DAYS - 1))
    limit = request.query.get("limit") or str(DEFAULT_ADS)
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

    def stats(self):
        try:
            query = parse_query(self.tz)
            report = self.reports.report(query)
        except ApiError as e:
            return e.response()
        except StorageError:
            return ApiError(503, "Database unavailable, retry later", None, {"Retry-After": "5"}).response()
        return json_response({"timezone": self.timezone_name, **report}, headers={"Cache-Control": "no-store"})
