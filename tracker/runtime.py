"""The connections of one process, built from Settings on first use.

Nothing connects at import or construction: a Dramatiq worker forks its processes after
importing `tracker.tasks`, and each process must open its own sockets.
"""

from __future__ import annotations

import functools

import peewee
import redis
from redis.cluster import RedisCluster

from .aggregate import Ledger
from .cluster import cluster_client, is_cluster_url
from .config import Settings
from .drainer import Drainer
from .drainlog import DrainLog
from .embedded import running_url
from .metrics import Metrics, process_metrics
from .group_commit import GroupCommit
from .models import connect
from .streams import Layout, Producer, ShardReader

#: Where Redis is looked for when REDIS_URL (or REDIS_HOST) is not set: the PHP system's default.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Extra seconds a drain-side Redis command may take beyond its blocking wait.
BLOCKING_MARGIN_S = 5
#: Connections of the probes' Redis pool (per process).
PROBE_CONNECTIONS = 4


class Runtime:
    """Lazily built clients for one process. `close()` releases them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.layout = Layout(settings.namespace, settings.shards)

    @functools.cached_property
    def redis_url(self) -> str:
        """REDIS_URL; else the embedded Redis of a `tracker run` on this data directory; else localhost."""
        return self.settings.redis_url or running_url(self.settings.data_dir) or DEFAULT_REDIS_URL

    def _client(self, timeout_s: float, connect_timeout_s: float, max_connections: int | None = None):
        """A client of the event Redis (or Redis Cluster). With `max_connections`, its pool is
        bounded and a caller waits at most `timeout_s` for a free connection."""
        if is_cluster_url(self.redis_url):
            bounded = {"max_connections": max_connections, "pool_timeout": timeout_s} if max_connections else {}
            return cluster_client(self.redis_url, socket_timeout=timeout_s, socket_connect_timeout=connect_timeout_s,
                                  **bounded)
        options = {"socket_timeout": timeout_s, "socket_connect_timeout": connect_timeout_s, "health_check_interval": 30}
        if not max_connections:
            return redis.Redis.from_url(self.redis_url, **options)
        pool = redis.BlockingConnectionPool.from_url(self.redis_url, max_connections=max_connections,
                                                     timeout=timeout_s, **options)
        return redis.Redis(connection_pool=pool)

    @functools.cached_property
    def redis(self) -> redis.Redis:
        """The drain and scheduler client: its timeout covers a blocking XREAD."""
        timeout = self.settings.redis_timeout_ms / 1000 + self.settings.drain_poll_ms / 1000 + BLOCKING_MARGIN_S
        return self._client(timeout, self.settings.redis_connect_timeout_ms / 1000)

    @functools.cached_property
    def ingest_redis(self) -> redis.Redis:
        """The request path's client: short timeouts, and a bounded pool that blocks briefly.

        A request that cannot get a connection, or whose XADD does not answer in time, fails
        with 503 instead of queueing without limit.
        """
        return self._client(self.settings.redis_timeout_ms / 1000, self.settings.redis_connect_timeout_ms / 1000,
                            self.settings.web_threads * 2)

    @functools.cached_property
    def probe_redis(self) -> redis.Redis:
        """For health and status probes: every wait bounded by TRACKER_HEALTH_TIMEOUT_MS, few connections."""
        timeout = self.settings.health_timeout_ms / 1000
        return self._client(timeout, timeout, PROBE_CONNECTIONS)

    @functools.cached_property
    def probe_database(self) -> peewee.Database:
        """For health and status probes: a connection per probe, every wait bounded likewise."""
        return connect(self.settings.effective_database_url, timeout_s=self.settings.health_timeout_ms / 1000)

    @functools.cached_property
    def metrics(self) -> Metrics:
        return process_metrics()

    @functools.cached_property
    def drain_log(self) -> DrainLog:
        return DrainLog(self.redis, self.metrics)

    @functools.cached_property
    def database(self) -> peewee.Database:
        return connect(self.settings.effective_database_url)

    @functools.cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.database, self.settings.tz)

    @functools.cached_property
    def reader(self) -> ShardReader:
        return ShardReader(self.redis)

    @functools.cached_property
    def drainer(self) -> Drainer:
        return Drainer(self.reader, self.ledger, self.settings)

    @functools.cached_property
    def producer(self) -> Producer:
        return Producer(self.ingest_redis, self.layout, self.settings.dedupe_window_ms)

    @functools.cached_property
    def ingest_producer(self) -> GroupCommit | Producer:
        """The request path's producer: with group commit (TRACKER_GROUP_COMMIT, on by default),
        concurrent requests share one pipelined round trip."""
        return GroupCommit(self.producer) if self.settings.group_commit else self.producer

    def close(self) -> None:
        """Close whatever was opened."""
        for name in ("redis", "ingest_redis", "probe_redis"):
            client = self.__dict__.pop(name, None)
            if isinstance(client, RedisCluster):
                client.close()
            elif client is not None:
                client.connection_pool.disconnect()
        for name in ("database", "probe_database"):
            db = self.__dict__.pop(name, None)
            if db is not None and not db.is_closed():
                db.close()
        for name in ("ledger", "reader", "drainer", "producer", "ingest_producer", "drain_log"):
            self.__dict__.pop(name, None)
