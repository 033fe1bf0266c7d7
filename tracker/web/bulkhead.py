"""A bulkhead around the stats routes: a hung database can never take ingest's threads.

Stats queries wait on the database, which may hang (a stalled server, a lost route: the MySQL
driver has no read timeout by default). Waitress has a fixed number of threads for every
route, so without a bound a few clients polling /v1/stats would hold all of them, and ingest
would stop answering: measured with 16 stats requests against a stalled MariaDB on 8 threads,
an impression waited more than 10 s. With the bulkhead, stats requests hold at most half the
threads; one more answers 503 at once.
"""

from __future__ import annotations

import threading

from .responses import error_response

#: Share of the web threads stats requests may hold at once.
STATS_SHARE = 0.5
#: Seconds a client refused by a full bulkhead is told to wait (Retry-After).
RETRY_AFTER_S = 5


class Bulkhead:
    """A Bottle plugin: at most `limit` requests at once on the routes named; more get 503."""

    name = "bulkhead"
    api = 2

    def __init__(self, rules: tuple[str, ...], limit: int):
        self.rules = rules
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @classmethod
    def for_stats(cls, web_threads: int) -> Bulkhead:
        return cls(("/v1/stats", "/v1/stats.csv", "/stats"), max(1, int(web_threads * STATS_SHARE)))

    def apply(self, callback, route):
        if route.rule not in self.rules or route.method == "OPTIONS":
            return callback

        def bounded(*args, **kwargs):
            if not self._slots.acquire(blocking=False):
                return error_response(503, "Too many requests of this kind at once, retry later",
                                      f"at most {self.limit} at a time", {"Retry-After": str(RETRY_AFTER_S)})
            try:
                return callback(*args, **kwargs)
            finally:
                self._slots.release()
        return bounded
