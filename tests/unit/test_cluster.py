"""Redis Cluster support without a cluster: the URL, and that each shard's keys share a slot."""

from __future__ import annotations

import pytest
from redis.cluster import key_slot

from tracker.broker import build_broker
from tracker.cluster import is_cluster_url, startup_nodes
from tracker.config import Settings
from tracker.errors import ConfigurationError
from tracker.streams import Layout


def test_a_cluster_url_names_its_startup_nodes_and_keeps_credentials_and_tls_options():
    plain, nodes = startup_nodes("rediss+cluster://:p%40ss@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002?ssl_ca_certs=/ca.pem")
    assert plain == "rediss://:p%40ss@10.0.0.1:7000?ssl_ca_certs=/ca.pem"
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert startup_nodes("redis+cluster://redis-a")[1] == [("redis-a", 6379)]


@pytest.mark.parametrize("url", ["redis+cluster://h:7000/3", "redis+cluster://", "redis+cluster://h:port"])
def test_a_bad_cluster_url_is_a_configuration_error(url):
    with pytest.raises(ConfigurationError):
        startup_nodes(url)


def test_only_the_cluster_schemes_mean_a_cluster():
    assert is_cluster_url("redis+cluster://h:1") and is_cluster_url("rediss+cluster://h:1")
    assert not any(is_cluster_url(u) for u in ("redis://h:1/0", "rediss://h", "unix:///s", None, ""))


@pytest.mark.parametrize("namespace", ["", "prod:"])
def test_every_key_of_a_shard_hashes_to_the_slot_of_its_stream(namespace):
    for shard in Layout(namespace, shards=8).shards():
        slot = key_slot(shard.key.encode())
        for key in (shard.lease_key, shard.queued_key, shard.dead_key, shard.aux("seen:abc"),
                    shard.aux("seen:{odd}id}"), shard.aux("seen:")):
            assert key_slot(key.encode()) == slot, key


def test_the_shards_of_a_layout_spread_over_many_slots():
    slots = {key_slot(s.key.encode()) for s in Layout("", shards=4).shards()}
    assert len(slots) == 8


def test_the_broker_refuses_to_live_on_the_cluster():
    settings = Settings(redis_url="redis+cluster://127.0.0.1:7000")
    with pytest.raises(ConfigurationError, match="TRACKER_BROKER_URL"):
        build_broker(settings)


def test_a_rabbitmq_url_builds_the_rabbitmq_broker_without_connecting():
    broker = build_broker(Settings(broker_url="amqp://guest:guest@127.0.0.1:1/"))
    assert type(broker).__name__ == "RabbitmqBroker"
