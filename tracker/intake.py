"""Intake: all the Redis work of one tracking request, in one round trip.

Every publisher-facing route (single events, the batch, the pixel, the click redirect) hands its
validated events and what the edge decided about the visitor to `Intake.record`, which

- refuses at once, with no Redis work at all, a client that its rate limiter has seen exceed
  its limit in the current window;
- counts the events of a filtered visitor (a crawler, a prefetch) in the per-day filtered
  counters instead of storing them;
- otherwise stores them with `Producer.store`, deduplicated by event id;

and, when rate limiting is on, adds the client's counter increment to that same pipeline. The
request that pushes a client over its limit is therefore already stored when the count comes
back: it is answered normally (a 429 would make its client retry an event that was stored),
and the limiter remembers the client so that its next requests get 429 without touching Redis.
See `tracker/ratelimit.py` for what that means for precision.

Keeping this in one place is deliberate: a group commit of concurrent requests pipelines these
calls, not the routes' own Redis commands (there are none).
"""

from __future__ import annotations

import datetime
import time
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from .filtered import FilteredCounts
from .ratelimit import RateLimiter
from .streams import NewEvent, Producer, Stored, execute, redis_errors


@dataclass(frozen=True)
class Visitor:
    """What the edge decided about the requester. Used for this request only, never stored."""

    filtered: str | None = None  # why its events are not counted ("bot", "prefetch"), or None
    client_ip: str | None = None  # the client's address, when rate limiting needs it


@dataclass(frozen=True)
class Outcome:
    """What became of a request's events: stored (in request order), or filtered and counted as such."""

    stored: list[Stored] = field(default_factory=list)
    filtered: str | None = None


class Intake:
    """Records requests' events: rate limit, filtered counters and storage, in one round trip."""

    def __init__(self, producer: Producer, counts: FilteredCounts, tz: ZoneInfo,
                 limiter: RateLimiter | None = None, clock=time.time):
        self.producer = producer
        self.counts = counts
        self.tz = tz
        self.limiter = limiter
        self.clock = clock

    def record(self, events: list[NewEvent], visitor: Visitor) -> Outcome:
        """Store `events`, or count them as filtered. Raises RateLimited or StreamUnavailable."""
        limiting = self.limiter is not None and visitor.client_ip is not None
        if limiting:
            self.limiter.check(visitor.client_ip)
        if visitor.filtered is None and not limiting:
            return Outcome(self.producer.store(events))
        with redis_errors():
            pipe = self.producer.client.pipeline(transaction=False)
            if limiting:
                self.limiter.queue(pipe, visitor.client_ip, len(events))
            if visitor.filtered is None:
                self.producer.queue(pipe, events)
            else:
                self.counts.queue(pipe, self.today(), filtered_tally(events, visitor.filtered))
            replies = execute(self.producer.client, pipe)
        if limiting:
            self.limiter.settle(visitor.client_ip, replies.pop(0))
        if visitor.filtered is not None:
            return Outcome([], visitor.filtered)
        return Outcome(self.producer.results(replies))

    def today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.clock(), self.tz).date()


def filtered_tally(events: list[NewEvent], reason: str) -> Counter:
    """How many events of each kind a filtered request carried, keyed (kind, reason)."""
    return Counter((event.kind, reason) for event in events)
