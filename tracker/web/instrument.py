"""Time and refusals of the tracking routes, for /metrics: a Bottle plugin around their handlers.

Outcomes of the events themselves (stored, duplicate, filtered) are counted where they are
decided, in `Intake.record`; what only the route knows (how long the request took, and that it
was refused, with which status and why) is counted here, the same way for every route.
"""

from __future__ import annotations

import json
import time

from ..metrics import Metrics
from .pixel import ERROR_HEADER as PIXEL_ERROR_HEADER



def refusal_reason(response) -> str:
    """The `error` phrase of a JSON refusal, or the pixel's error header; else the status line."""
    reason = response.headers.get(PIXEL_ERROR_HEADER)  # the pixel's body is always the GIF
    if reason:
        return reason
    try:
        return json.loads(response.body)["error"]
    except (TypeError, ValueError, KeyError):
        return response.status_line


class IngestInstrument:
    """Observes `ingest_duration_seconds` per route and counts 4xx/5xx answers per kind."""

    name = "ingest-instrument"
    api = 2

    def __init__(self, metrics: Metrics, kinds_by_route: dict[str, str]):
        self.metrics = metrics
        self.kinds_by_route = kinds_by_route
        metrics.declare_ingest(endpoints=kinds_by_route)

    def apply(self, callback, route):
        kind = self.kinds_by_route.get(route.rule)
        if kind is None or route.method == "OPTIONS":
            return callback
        metrics, endpoint = self.metrics, route.rule

        def instrumented(*args, **kwargs):
            started = time.perf_counter()
            try:
                response = callback(*args, **kwargs)
            finally:
                metrics.ingest_time(endpoint, time.perf_counter() - started)
            status = getattr(response, "status_code", 200)
            if status >= 400:
                metrics.rejected(kind, status, refusal_reason(response))
            return response
        return instrumented
