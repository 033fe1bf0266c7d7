"""Reading the counts back: impressions, clicks and CTR per ad per day, with totals.

Shared by `GET /v1/stats`, the stats page and `tracker stats`.
"""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from dataclasses import dataclass

import peewee

from .events import CLICK, IMPRESSION
from .models import as_date, count_field, counts_model, database_errors

#: Longest date range one report may cover (days).
MAX_RANGE_DAYS = 366
#: Most ads one report lists; the totals always cover every ad.
MAX_ADS = 1_000
DEFAULT_ADS = 100
#: The named ranges offered by the stats page; `range=` also takes any `<N>d` up to MAX_RANGE_DAYS.
RANGES = ("today", "7d", "30d", "90d")
_DAYS_RANGE = re.compile(r"([1-9][0-9]{0,2})d")


def range_dates(name: str, today: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The first and last day of a named range: `today`, `yesterday`, or `<N>d` (the N days ending today)."""
    if name == "today":
        return today, today
    if name == "yesterday":
        day = today - datetime.timedelta(days=1)
        return day, day
    match = _DAYS_RANGE.fullmatch(name)
    if not match or int(match[1]) > MAX_RANGE_DAYS:
        raise ValueError(f"range is today, yesterday or 1d..{MAX_RANGE_DAYS}d (the N days ending today)")
    return today - datetime.timedelta(days=int(match[1]) - 1), today


def ctr(impressions: int, clicks: int) -> float | None:
    """Click-through rate, or None when there were no impressions to divide by."""
    return round(clicks / impressions, 6) if impressions else None


@dataclass
class Counts:
    impressions: int = 0
    clicks: int = 0

    def as_dict(self) -> dict:
        return {"impressions": self.impressions, "clicks": self.clicks, "ctr": ctr(self.impressions, self.clicks)}


@dataclass(frozen=True)
class Query:
    start: datetime.date
    end: datetime.date
    ad_ids: tuple[int, ...] = ()  # empty: every ad
    limit: int = DEFAULT_ADS

    def __post_init__(self):
        if self.end < self.start:
            raise ValueError("'from' must not be after 'to'")
        if (self.end - self.start).days >= MAX_RANGE_DAYS:
            raise ValueError(f"a report covers at most {MAX_RANGE_DAYS} days")
        if not 1 <= self.limit <= MAX_ADS:
            raise ValueError(f"limit must be between 1 and {MAX_ADS}")
        if len(self.ad_ids) > MAX_ADS:
            raise ValueError(f"at most {MAX_ADS} ad ids per report")

    def days(self) -> list[datetime.date]:
        return [self.start + datetime.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


class Reports:
    """Report queries against one database."""

    def __init__(self, db: peewee.Database):
        self.db = db

    def report(self, query: Query) -> dict:
        """Totals, a zero-filled series of daily totals, and per-ad daily rows (top ads first)."""
        with database_errors(self.db):
            by_day = self._per_day(query)
            ads = self._top_ads(query)
            per_ad = self._per_ad_day(query, ads)
        total = Counts(sum(c.impressions for c in by_day.values()), sum(c.clicks for c in by_day.values()))
        return {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "totals": total.as_dict(),
            "days": [{"date": d.isoformat(), **by_day.get(d, Counts()).as_dict()} for d in query.days()],
            "ads": [self._ad_entry(ad_id, per_ad.get(ad_id, {})) for ad_id in ads],
        }

    @staticmethod
    def _ad_entry(ad_id: int, days: dict[datetime.date, Counts]) -> dict:
        total = Counts(sum(c.impressions for c in days.values()), sum(c.clicks for c in days.values()))
        return {"ad_id": ad_id, **total.as_dict(),
                "days": [{"date": d.isoformat(), **c.as_dict()} for d, c in sorted(days.items())]}

    def _select(self, kind, query: Query, *group_by):
        model, column = counts_model(kind), count_field(kind)
        sql = (model.select(*group_by, peewee.fn.SUM(column).alias("n"))
               .where(model.date.between(query.start, query.end)))
        if query.ad_ids:
            sql = sql.where(model.ad_id.in_(query.ad_ids))
        return sql.group_by(*group_by).bind(self.db)

    def _per_day(self, query: Query) -> dict[datetime.date, Counts]:
        out: dict[datetime.date, Counts] = defaultdict(Counts)
        for kind in (IMPRESSION, CLICK):
            model = counts_model(kind)
            for day, n in self._select(kind, query, model.date).tuples():
                setattr(out[as_date(day)], kind.plural, int(n))
        return out

    def _top_ads(self, query: Query) -> list[int]:
        """The ads to list: the requested ones, or the most seen (then most clicked) ones."""
        if query.ad_ids:
            return sorted(set(query.ad_ids))
        totals: dict[int, Counts] = defaultdict(Counts)
        for kind in (IMPRESSION, CLICK):
            model = counts_model(kind)
            for ad_id, n in self._select(kind, query, model.ad_id).tuples():
                setattr(totals[ad_id], kind.plural, int(n))
        ranked = sorted(totals, key=lambda a: (-totals[a].impressions, -totals[a].clicks, a))
        return ranked[:query.limit]

    def _per_ad_day(self, query: Query, ads: list[int]) -> dict[int, dict[datetime.date, Counts]]:
        out: dict[int, dict[datetime.date, Counts]] = defaultdict(lambda: defaultdict(Counts))
        if not ads:
            return out
        narrowed = Query(query.start, query.end, tuple(ads), max(len(ads), 1))
        for kind in (IMPRESSION, CLICK):
            model = counts_model(kind)
            for ad_id, day, n in self._select(kind, narrowed, model.ad_id, model.date).tuples():
                setattr(out[ad_id][as_date(day)], kind.plural, int(n))
        return out

