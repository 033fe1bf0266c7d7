"""The refusals every tracking route shares: rate limited (429) and event store down (503)."""

from __future__ import annotations

from ..errors import RateLimited
from .responses import ApiError

#: The 503 answer's message; the PHP system's clients never saw one, tracker.js retries on it.
UNAVAILABLE = "Event store unavailable, retry later"


def too_many_requests(error: RateLimited) -> ApiError:
    return ApiError(429, "Too many requests", f"rate limit exceeded; retry after {error.retry_after_s} s",
                    {"Retry-After": str(error.retry_after_s)})


def unavailable(retry_after_s: int, detail: str | None = None) -> ApiError:
    return ApiError(503, UNAVAILABLE, detail, {"Retry-After": str(retry_after_s)})
