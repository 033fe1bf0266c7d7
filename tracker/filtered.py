"""Filtered events: how many impressions and clicks were answered but not counted, and why.

Key layout (NS is the namespace prefix):

    NS tracker:filtered:<YYYY-MM-DD>     hash, one per day in the reporting timezone
        field <kind>:<reason>            e.g. "impressions:bot", "clicks:prefetch" -> a count

Only these counts are kept: no IP, no user agent, nothing about the visitor. Each day's hash
expires `RETENTION_DAYS` after its last write.
"""

from __future__ import annotations

import datetime
from collections import Counter

from redis import Redis

from .events import KINDS
from .streams import redis_errors

#: Why an event was not counted: a known crawler's user agent, or a browser's prefetch/prerender.
REASONS = ("bot", "prefetch")
#: How long a day's filtered counts are kept (days).
RETENTION_DAYS = 400


class FilteredCounts:
    """Per-day counters of filtered events in Redis."""

    def __init__(self, client: Redis, namespace: str = ""):
        self.client = client
        self.namespace = namespace

    def key(self, day: datetime.date) -> str:
        return f"{self.namespace}tracker:filtered:{day.isoformat()}"

    def queue(self, pipe, day: datetime.date, tally: Counter) -> None:
        """Queue the increments of `tally` ((kind, reason) -> n) for `day` on `pipe`."""
        key = self.key(day)
        for (kind, reason), n in tally.items():
            pipe.hincrby(key, f"{kind.plural}:{reason}", n)
        pipe.expire(key, RETENTION_DAYS * 86400)

    def read(self, days: list[datetime.date]) -> list[dict]:
        """The counts of each day, zero-filled: {"date", "impressions": {reason: n}, "clicks": {...}}."""
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for day in days:
                pipe.hgetall(self.key(day))
            hashes = pipe.execute()
        return [day_counts(day, raw) for day, raw in zip(days, hashes)]


def day_counts(day: datetime.date, raw: dict) -> dict:
    counts = {"date": day.isoformat(), **{kind.plural: dict.fromkeys(REASONS, 0) for kind in KINDS}}
    for name, value in raw.items():
        plural, _, reason = name.decode().partition(":")
        if plural in counts and reason in REASONS:
            counts[plural][reason] = int(value)
    return counts


def totals(days: list[dict]) -> dict:
    """The sum of `read`'s days, per kind and reason."""
    total = {kind.plural: dict.fromkeys(REASONS, 0) for kind in KINDS}
    for day in days:
        for kind in KINDS:
            for reason in REASONS:
                total[kind.plural][reason] += day[kind.plural][reason]
    return total

