"""Redis Cluster: the `redis+cluster://` URL, the client it builds, and scripts in pipelines.

The event streams may live on a Redis Cluster. REDIS_URL says so by its scheme:

    redis+cluster://[[user]:password@]host:port[,host:port...][?query]
    rediss+cluster://...       the same over TLS (query options as for rediss://)

The hosts are startup nodes: the client asks the first reachable one for the slot map and
finds the other masters itself. The query takes the options of a `redis://` URL (for TLS:
`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`). A
cluster has no database numbers, so the URL has no `/db` path.

Why it works on a cluster: every key of a stream shard is `S` or `{S}:...`, so Redis hashes
them to one slot, and every script and multi-key command of the tracker touches one shard only
(see tracker/streams.py). A pipeline may span shards: redis-py's cluster pipeline sends each
command to the node of its slot. Its `evalsha()` and `eval()` methods refuse, though the
EVAL command routes by its keys like any other, so `streams.queue_script` sends a script to a
cluster pipeline as a plain EVAL command.

The Dramatiq broker cannot live on a cluster (its Lua scripts touch keys in many slots): with a
cluster, TRACKER_BROKER_URL names a separate Redis or a RabbitMQ (see tracker/broker.py).
"""

from __future__ import annotations

import functools
import urllib.parse

import redis
from redis.cluster import ClusterNode, RedisCluster

from .errors import ConfigurationError

#: URL schemes of a Redis Cluster, and the plain scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str | None) -> bool:
    return bool(url) and urllib.parse.urlsplit(url).scheme in CLUSTER_SCHEMES


def startup_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """Split a cluster URL into a plain URL of its first node, and every node's (host, port)."""
    parts = urllib.parse.urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "6379")
        try:
            nodes.append((name.strip("[]"), int(port)))
        except ValueError:
            raise ConfigurationError(f"bad node {host!r} in the Redis Cluster URL") from None
    if not nodes:
        raise ConfigurationError("a redis+cluster:// URL needs at least one host:port")
    if parts.path not in ("", "/", "/0"):
        raise ConfigurationError("a Redis Cluster has no database numbers: drop the /<db> of the URL")
    first = f"{credentials}@{hosts.split(',')[0]}" if credentials else hosts.split(",")[0]
    plain = urllib.parse.urlunsplit((CLUSTER_SCHEMES[parts.scheme], first, "", parts.query, ""))
    return plain, nodes


def cluster_client(url: str, pool_timeout: float | None = None, **kwargs) -> RedisCluster:
    """A RedisCluster client for a `redis+cluster://` URL.

    With `pool_timeout`, each node's connection pool is bounded (`max_connections`) and a
    caller waits at most that long for a free connection, as the ingest path's pool does.
    """
    plain, nodes = startup_nodes(url)
    if pool_timeout is not None:
        kwargs["connection_pool_class"] = functools.partial(redis.BlockingConnectionPool, timeout=pool_timeout)
    kwargs.pop("health_check_interval", None)  # not an option of cluster nodes in redis-py 4.6
    return RedisCluster.from_url(plain, startup_nodes=[ClusterNode(h, p) for h, p in nodes[1:]], **kwargs)
