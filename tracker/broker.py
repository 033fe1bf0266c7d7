"""The Dramatiq broker, chosen by URL: Redis (the default, the event Redis itself), RabbitMQ
(`amqp://`, `amqps://`), or a stub.

With the event streams on a Redis Cluster the broker must be elsewhere: Dramatiq's Redis broker
runs Lua scripts over keys of several slots, which a cluster refuses. Whatever the broker, the
tick's leader lock and "drain queued" flags live in the event Redis (tracker/scheduler.py), so
one tick sender and one queued drain per shard hold with any broker.

The middleware list is explicit: Dramatiq's defaults minus its Prometheus exporter (which
would open a port in every worker process unasked), plus CurrentMessage, which the drain actor
reads to know how many retries its message has had.
"""

from __future__ import annotations

from dramatiq import Broker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (AgeLimit, Callbacks, CurrentMessage, Pipelines, Retries,
                                 ShutdownNotifications, TimeLimit)

from .cluster import is_cluster_url
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
    if url.startswith(("amqp://", "amqps://")):
        # Publisher confirms: a drain message counts as sent once RabbitMQ has it.
        return RabbitmqBroker(url=url, confirm_delivery=True, middleware=middleware())
    if url == "stub://":
        return StubBroker(middleware=middleware())
    if is_cluster_url(url):
        raise ConfigurationError("the Dramatiq broker cannot run on a Redis Cluster: set TRACKER_BROKER_URL to a "
                                 "separate Redis (redis://) or a RabbitMQ (amqp://)")
    raise ConfigurationError(f"unsupported TRACKER_BROKER_URL {url!r}: use redis://, rediss://, unix:// or amqp://")
