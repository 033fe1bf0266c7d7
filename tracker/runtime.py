"""The connections of one process, built from Settings on first use.

Nothing connects at import or construction: a Dramatiq worker forks its processes after
importing `tracker.tasks`, and each process must open its own sockets.
"""

from __future__ import annotations

import functools

import peewee
import redis

from .aggregate import Ledger
from .config import Settings
from .drainer import Drainer
from .embedded import running_url
from .group_commit import GroupCommit
from .models import connect
from .streams import Layout, Producer, ShardReader

#: Where Redis is looked for when REDIS_URL (or REDIS_HOST) is not set: the PHP system's default.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Extra seconds a drain-side Redis command may take beyond its blocking wait.
BLOCKING_MARGIN_S = 5


class Runtime:
    """Lazily built clients for one process. `close()` releases them."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.layout = Layout(settings.namespace, settings.shards)

    @functools.cached_property
    def redis_url(self) -> str:
        """REDIS_URL; else the embedded Redis of a `tracker run` on this data directory; else localhost."""
        return self.settings.redis_url or running_url(self.settings.data_dir) or DEFAULT_REDIS_URL

    @functools.cached_property
    def redis(self) -> redis.Redis:
        """The drain and scheduler client: its timeout covers a blocking XREAD."""
        timeout = self.settings.redis_timeout_ms / 1000 + self.settings.drain_poll_ms / 1000 + BLOCKING_MARGIN_S
        return redis.Redis.from_url(
            self.redis_url, socket_timeout=timeout, health_check_interval=30,
            socket_connect_timeout=self.settings.redis_connect_timeout_ms / 1000,
        )

    @functools.cached_property
    def ingest_redis(self) -> redis.Redis:
        """The request path's client: short timeouts, and a bounded pool that blocks briefly.

        A request that cannot get a connection, or whose XADD does not answer in time, fails
        with 503 instead of queueing without limit.
        """
        timeout = self.settings.redis_timeout_ms / 1000
        pool = redis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=self.settings.web_threads * 2, timeout=timeout,
            socket_timeout=timeout, socket_connect_timeout=self.settings.redis_connect_timeout_ms / 1000,
            health_check_interval=30,
        )
        return redis.Redis(connection_pool=pool)

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
        for name in ("redis", "ingest_redis"):
            client = self.__dict__.pop(name, None)
            if client is not None:
                client.connection_pool.disconnect()
        db = self.__dict__.pop("database", None)
        if db is not None and not db.is_closed():
            db.close()
        for name in ("ledger", "reader", "drainer", "producer", "ingest_producer"):
            self.__dict__.pop(name, None)
