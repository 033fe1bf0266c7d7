"""The Dramatiq broker, chosen by URL: Redis (the default, the event Redis itself), or a stub.

The middleware list is explicit: Dramatiq's defaults minus its Prometheus exporter (which
would open a port in every worker process unasked), plus CurrentMessage, which the drain actor
reads to know how many retries its message has had.
"""

from __future__ import annotations

from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (AgeLimit, Callbacks, CurrentMessage, Pipelines, Retries,
                                 ShutdownNotifications, TimeLimit)

from .config import Settings
from .errors import ConfigurationError
from .runtime import DEFAULT_REDIS_URL

#: Longest pause (ms) of an idle consumer between two fetches. Dramatiq's default is the
#: worker timeout (1 s); a drain message should start well within the tick interval.
IDLE_FETCH_MAX_MS = 100


class TrackerRedisBroker(RedisBroker):
    """RedisBroker whose idle consumers poll at least every IDLE_FETCH_MAX_MS."""

    def consume(self, queue_name, prefetch=1, timeout=5000):
        return super().consume(queue_name, prefetch, min(timeout, IDLE_FETCH_MAX_MS))


def middleware() -> list:
    return [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries(), CurrentMessage()]


def build_broker(settings: Settings) -> Broker:
    """The broker named by TRACKER_BROKER_URL (default: the event Redis)."""
    url = settings.effective_broker_url or DEFAULT_REDIS_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        return TrackerRedisBroker(url=url, namespace=settings.broker_namespace, middleware=middleware())
    if url == "stub://":
        return StubBroker(middleware=middleware())
    raise ConfigurationError(f"unsupported TRACKER_BROKER_URL {url!r}: use redis://, rediss:// or unix://")
