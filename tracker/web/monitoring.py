"""Monitoring routes: /metrics (Prometheus), /healthz (liveness), /readyz (readiness).

    /metrics   this process's metrics (every web process's, when several share the port) and
               the per-shard figures of Redis and the database, cached briefly
    /healthz   200 {"status": "ok"} whenever the process can answer; touches no backend
    /readyz    200 when Redis and the database answer within TRACKER_HEALTH_TIMEOUT_MS,
               else 503 {"status": "unavailable", "error": "...", "checks": {...}}

Keep them off the public internet (they tell stream names, volumes and backend errors): let
the reverse proxy route only the tracking and stats paths, or block these three.
"""

from __future__ import annotations

from bottle import Bottle, HTTPResponse

from ..health import Readiness, check_database, check_redis, readiness_report
from ..metrics import CONTENT_TYPE, Metrics, exposition
from ..runtime import Runtime
from ..queue_probe import dead_letter_probe
from ..status import CachedStatus, StatusCollector, StatusReader
from .responses import NO_STORE, json_response


class Monitoring:
    def __init__(self, metrics: Metrics, status: CachedStatus, readiness: Readiness):
        self.metrics = metrics
        self.collector = StatusCollector(status)
        self.readiness = readiness

    @classmethod
    def of(cls, runtime: Runtime) -> Monitoring:
        """The probes of `runtime`: bounded clients of their own, so a slow backend never blocks a scrape for long."""
        settings = runtime.settings
        probe = dead_letter_probe(settings, runtime.probe_redis, runtime.redis_url)
        reader = StatusReader(runtime.probe_redis, runtime.probe_database, runtime.layout.shards(), probe)
        readiness = Readiness({"redis": lambda: check_redis(runtime.probe_redis),
                               "database": lambda: check_database(runtime.probe_database)})
        return cls(runtime.metrics, CachedStatus(reader, settings.metrics_cache_ms), readiness)

    def register(self, app: Bottle) -> None:
        app.route("/metrics", "GET", self.scrape)
        app.route("/healthz", "GET", self.healthz)
        app.route("/readyz", "GET", self.readyz)

    def scrape(self):
        return HTTPResponse(exposition(self.metrics, self.collector), 200,
                            {"Content-Type": CONTENT_TYPE, **NO_STORE})

    def healthz(self):
        return json_response({"status": "ok"}, 200, NO_STORE)

    def readyz(self):
        status, body = readiness_report(self.readiness.run())
        return json_response(body, status, NO_STORE)
