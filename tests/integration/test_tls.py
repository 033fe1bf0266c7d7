"""TLS and AUTH through the URLs alone: a Redis and a MariaDB of their own that refuse plain
connections, reached by the tracker's Runtime with `rediss://...?ssl_ca_certs=...` and
`mysql://...?ssl_ca=...&ssl_verify_cert=true`."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import service_missing
from tests.servers import Certificates, TlsMariadb, TlsRedis
from tracker.config import Settings
from tracker.errors import ConfigurationError, DatabaseUnavailable
from tracker.events import IMPRESSION
from tracker.models import connect, create_tables
from tracker.runtime import Runtime
from tracker.status import all_status
from tracker.streams import ensure_groups

pytestmark = pytest.mark.integration

PASSWORD = "tls/secret+1"
TS = 1_795_500_000


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    reason = Certificates.unavailable()
    if reason:
        service_missing("openssl", RuntimeError(reason))
    return Certificates(tmp_path_factory.mktemp("certs")).create()


@pytest.fixture(scope="module")
def tls_redis(certs, tmp_path_factory):
    server = TlsRedis(tmp_path_factory.mktemp("tls-redis"), certs, PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_mariadb(certs):
    reason = TlsMariadb.unavailable()
    if reason:
        service_missing("mariadbd (for the TLS test)", RuntimeError(reason))
    server = TlsMariadb(certs, PASSWORD).start()
    yield server
    server.stop()


def test_ingest_drain_and_status_over_tls_redis_and_tls_mariadb(tls_redis, tls_mariadb, certs, settings):
    database_url = tls_mariadb.url(f"ssl_ca={certs.ca}&ssl_verify_cert=true&ssl_verify_identity=true")
    runtime = Runtime(settings.replace(redis_url=tls_redis.url(), database_url=database_url))
    try:
        create_tables(runtime.database)
        ensure_groups(runtime.redis, runtime.layout)
        for ad_id in (1, 2, 2):
            runtime.producer.add(IMPRESSION, ad_id, TS)  # the ingest client (its own pool)
        report = runtime.drainer.drain(runtime.layout.shard(IMPRESSION, 0))
        assert report.applied == 3
        (cipher,) = runtime.database.execute_sql("SHOW SESSION STATUS LIKE 'Ssl_cipher'").fetchall()
        assert cipher[1], "the database connection is not encrypted"
        assert runtime.redis.connection_pool.connection_class.__name__ == "SSLConnection"
        assert sum(s.applied for s in all_status(runtime.redis, runtime.ledger, runtime.layout)) == 3
    finally:
        runtime.close()


def test_redis_refuses_a_client_without_its_certificate_or_password(tls_redis):
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(tls_redis.url(with_client_cert=False), socket_timeout=3).ping()
    wrong = tls_redis.url().replace(f":{PASSWORD.replace('/', '%2F').replace('+', '%2B')}@", ":wrong@")
    assert wrong != tls_redis.url()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(wrong, socket_timeout=3).ping()


def test_mariadb_refuses_the_tracker_user_without_tls(tls_mariadb):
    db = connect(tls_mariadb.url("ssl_disabled=true"))
    with pytest.raises(DatabaseUnavailable):
        create_tables(db)


def test_a_database_url_with_a_missing_certificate_or_an_unknown_option_fails_at_start(tls_mariadb, tmp_path):
    with pytest.raises(ConfigurationError, match="ssl_ca"):
        Runtime(Settings(database_url=tls_mariadb.url(f"ssl_ca={tmp_path / 'nope.pem'}"))).database
    with pytest.raises(ConfigurationError, match="sslca"):
        Runtime(Settings(database_url=tls_mariadb.url("sslca=/etc/hosts"))).database
