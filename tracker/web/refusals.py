"""The refusals every tracking route shares: rate limited (429) and event store down (503).

`record` is how a tracking route stores its events: `Intake.record`, with its refusals turned
into the same answers on every route and "the event store is down" logged once in a while for
the whole process, not once per request.
"""

from __future__ import annotations

import logging

from ..errors import RateLimited, StreamUnavailable
from ..intake import Intake, Outcome, Visitor
from ..logs import Throttled
from ..streams import NewEvent
from .responses import ApiError

log = logging.getLogger(__name__)

#: Seconds between two log lines about refused events (the count in between is logged).
REFUSAL_LOG_INTERVAL_S = 10
_refused = Throttled(log, REFUSAL_LOG_INTERVAL_S)

#: The 503 answer's message; the PHP system's clients never saw one, tracker.js retries on it.
UNAVAILABLE = "Event store unavailable, retry later"


def too_many_requests(error: RateLimited) -> ApiError:
    return ApiError(429, "Too many requests", f"rate limit exceeded; retry after {error.retry_after_s} s",
                    {"Retry-After": str(error.retry_after_s)})


def unavailable(retry_after_s: int, detail: str | None = None) -> ApiError:
    return ApiError(503, UNAVAILABLE, detail, {"Retry-After": str(retry_after_s)})


def record(intake: Intake, events: list[NewEvent], visitor: Visitor, retry_after_s: int,
           detail: str | None = None) -> Outcome:
    """Store `events` (or count them as filtered); ApiError(429) rate limited, ApiError(503)
    when the event store is unavailable, with `detail` telling the client what to do."""
    try:
        return intake.record(events, visitor)
    except RateLimited as e:
        raise too_many_requests(e) from None
    except StreamUnavailable as e:
        _refused.warning("refused %d event(s): %s", len(events), e)
        raise unavailable(retry_after_s, detail) from None
