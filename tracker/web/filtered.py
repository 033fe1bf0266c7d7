"""GET /v1/filtered: the events answered but not counted, per day, kind and reason.

    /v1/filtered?from=2026-11-01&to=2026-11-24

{"timezone":"UTC","from":..,"to":..,"totals":{"impressions":{"bot":3,"prefetch":1},"clicks":{...}},
 "days":[{"date":"2026-11-01","impressions":{"bot":0,"prefetch":0},"clicks":{...}}, ...]}
Dates are days in the reporting timezone, both included, at most 366; by default the last 7.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from bottle import Bottle

from ..errors import StreamUnavailable
from ..filtered import FilteredCounts, totals
from ..reports import Query
from .responses import NO_STORE, ApiError, json_response, preflight_response
from .stats import parse_dates


def parse_range(tz: ZoneInfo) -> Query:
    """The days asked for, as /v1/stats reads them (`range=`, or `from`/`to`)."""
    start, end = parse_dates(datetime.datetime.now(tz).date())
    try:
        return Query(start, end)
    except ValueError as e:
        raise ApiError(400, "Invalid report range", str(e)) from None


def report(counts: FilteredCounts, query: Query) -> dict:
    """Filtered counts over the query's days (its ads do not matter: filtered events have none)."""
    days = counts.read(query.days())
    return {"from": query.start.isoformat(), "to": query.end.isoformat(), "totals": totals(days), "days": days}


class FilteredApi:
    def __init__(self, counts: FilteredCounts, tz: ZoneInfo, timezone_name: str):
        self.counts = counts
        self.tz = tz
        self.timezone_name = timezone_name

    def register(self, app: Bottle) -> None:
        app.route("/v1/filtered", "GET", self.get)
        app.route("/v1/filtered", "OPTIONS", preflight_response)

    def get(self):
        try:
            payload = {"timezone": self.timezone_name, **report(self.counts, parse_range(self.tz))}
        except ApiError as e:
            return e.response()
        except StreamUnavailable:
            return ApiError(503, "Redis unavailable, retry later", None, {"Retry-After": "5"}).response()
        return json_response(payload, 200, NO_STORE)
