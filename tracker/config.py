"""Settings: the environment is read here, once, and nowhere else.

Every other module receives a `Settings` (or the connections built from it) as an argument.
Times are in milliseconds throughout, sizes in bytes, unless a name says otherwise.

The variables of the PHP system this project replaces (REDIS_HOST, REDIS_PORT, DB_HOST,
DB_USER, DB_PASS, DB_NAME) keep working; the URL forms win when both are given, and giving
both forms with different values is a configuration error rather than a silent choice.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

#: Shards per event kind (streams `impressions_stream`, `impressions_stream:1`, ...).
DEFAULT_SHARDS = 1
#: Entries asked for by one XREADGROUP. (Measured with bench/drain.py: 1000 x 1 drained ~200k
#: events/s over 100 ads and ~100k over 10,000; 5000 x 5 ~310k and ~210k, the worker staying
#: well under its memory target; see the README's Performance section.)
DEFAULT_BATCH_SIZE = 5000
#: Reads folded into one database transaction when a backlog is waiting.
DEFAULT_READS_PER_COMMIT = 5
#: How long one drain message keeps reading before it hands over to the next tick (ms).
DEFAULT_DRAIN_BUDGET_MS = 5_000
#: How long an idle drain waits for new entries (a blocking XREAD) before reading again (ms).
DEFAULT_DRAIN_POLL_MS = 100
#: How long a drain lease lives without renewal (ms); a killed drainer blocks its shard this long.
DEFAULT_LEASE_TTL_MS = 10_000
#: Interval of the scheduler tick that sends drain messages (ms).
DEFAULT_TICK_INTERVAL_MS = 1_000
#: Dramatiq retries of a failed drain, and the backoff between them (ms).
DEFAULT_DRAIN_MAX_RETRIES = 10
DEFAULT_DRAIN_MIN_BACKOFF_MS = 1_000
DEFAULT_DRAIN_MAX_BACKOFF_MS = 60_000
#: Connect and command timeouts of the ingest path's Redis client (ms).
DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 500
DEFAULT_REDIS_TIMEOUT_MS = 1_000
#: Largest request body the ingest routes read (bytes).
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Seconds a client is told to wait (Retry-After) when the event store is unavailable.
DEFAULT_RETRY_AFTER_S = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: Waitress threads per web process.
DEFAULT_WEB_THREADS = 8
#: Web processes of `tracker serve`, sharing the port (SO_REUSEPORT).
DEFAULT_WEB_PROCESSES = 1
#: 1: concurrent ingest requests of a process share one Redis round trip (group commit); 0: each
#: request stores its own events. Measured on 2 cores: +13% to +35% requests/s when the machine is
#: otherwise quiet, but -7% to -20% when it is oversubscribed (a preempted leader holds up every
#: request waiting on it); see the README's Performance.
DEFAULT_GROUP_COMMIT = 1
DEFAULT_DATA_DIR = "var"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_BROKER_NAMESPACE = "dramatiq"
DEFAULT_QUEUE = "tracker"
#: Most events one POST /v1/events may carry.
DEFAULT_BATCH_MAX_EVENTS = 100
#: How long a client's event_id is remembered, so that a retry is stored once (ms).
DEFAULT_DEDUPE_WINDOW_MS = 24 * 3600 * 1000
#: How far a client-supplied `ts` may be from the server's clock, either way (ms).
DEFAULT_CLOCK_SKEW_MS = 3600 * 1000
#: Which user agents are not counted: "crawlers" (the crawler list without plain HTTP
#: libraries such as curl), "all" (the whole list), or "off".
DEFAULT_BOT_FILTER = "crawlers"
BOT_FILTERS = ("crawlers", "all", "off")
#: Events one client IP may send per window; 0 turns rate limiting off.
DEFAULT_RATE_LIMIT = 0
#: The rate limiting window (ms).
DEFAULT_RATE_LIMIT_WINDOW_MS = 60_000
#: Shortest accepted secret (characters): click signing secret, link API token, IP hash key.
MIN_SECRET_CHARS = 16
#: How long counted events stay in their stream for replay before the trim removes them (ms).
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
#: Most entries a stream keeps once counted (0: no limit, only the age decides).
DEFAULT_TRIM_MAX_LEN = 0
#: How often the tick leader sends the `trim` message (ms).
DEFAULT_TRIM_INTERVAL_MS = 60_000
#: After an ingest Redis command timed out, answer 503 at once for this long before probing (ms; 0: off).
DEFAULT_REDIS_BREAKER_MS = 1_000
#: Log line formats: "text" (human) or "json" (one JSON object per line).
LOG_FORMATS = ("text", "json")
DEFAULT_LOG_FORMAT = "text"
#: How long /metrics reuses the per-shard figures it read from Redis and the database (ms).
DEFAULT_METRICS_CACHE_MS = 1_000
#: Where a Dramatiq worker serves its processes' metrics (0 disables the server).
DEFAULT_WORKER_METRICS_HOST = "127.0.0.1"
DEFAULT_WORKER_METRICS_PORT = 9191
#: Longest wait of /readyz (and of the /metrics shard figures) for Redis or the database (ms).
DEFAULT_HEALTH_TIMEOUT_MS = 1_000


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with defaults that run on a laptop."""

    redis_url: str | None = None
    broker_url: str | None = None
    database_url: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    namespace: str = ""
    shards: int = DEFAULT_SHARDS
    batch_size: int = DEFAULT_BATCH_SIZE
    reads_per_commit: int = DEFAULT_READS_PER_COMMIT
    drain_budget_ms: int = DEFAULT_DRAIN_BUDGET_MS
    drain_poll_ms: int = DEFAULT_DRAIN_POLL_MS
    lease_ttl_ms: int = DEFAULT_LEASE_TTL_MS
    tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS
    drain_max_retries: int = DEFAULT_DRAIN_MAX_RETRIES
    drain_min_backoff_ms: int = DEFAULT_DRAIN_MIN_BACKOFF_MS
    drain_max_backoff_ms: int = DEFAULT_DRAIN_MAX_BACKOFF_MS
    redis_connect_timeout_ms: int = DEFAULT_REDIS_CONNECT_TIMEOUT_MS
    redis_timeout_ms: int = DEFAULT_REDIS_TIMEOUT_MS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    web_threads: int = DEFAULT_WEB_THREADS
    web_processes: int = DEFAULT_WEB_PROCESSES
    group_commit: int = DEFAULT_GROUP_COMMIT
    timezone: str = DEFAULT_TIMEZONE
    broker_namespace: str = DEFAULT_BROKER_NAMESPACE
    queue_name: str = DEFAULT_QUEUE
    log_level: str = "INFO"
    batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS
    dedupe_window_ms: int = DEFAULT_DEDUPE_WINDOW_MS
    clock_skew_ms: int = DEFAULT_CLOCK_SKEW_MS
    bot_filter: str = DEFAULT_BOT_FILTER
    click_secret: str = dataclasses.field(default="", repr=False)  # HMAC key of signed click links; /c refuses without one
    link_api_token: str = dataclasses.field(default="", repr=False)  # bearer token of POST /v1/links; off without one
    public_url: str = ""  # the tracker's public base URL, for signed links (e.g. https://t.example)
    trusted_proxies: str = ""  # comma-separated IPs/CIDRs whose X-Forwarded-For is believed
    rate_limit: int = DEFAULT_RATE_LIMIT
    rate_limit_window_ms: int = DEFAULT_RATE_LIMIT_WINDOW_MS
    ip_hash_key: str = dataclasses.field(default="", repr=False)  # HMAC key turning client IPs into rate limit keys
    retention_ms: int = DEFAULT_RETENTION_MS
    trim_max_len: int = DEFAULT_TRIM_MAX_LEN
    trim_interval_ms: int = DEFAULT_TRIM_INTERVAL_MS
    #: HTTP basic credentials of everything under /admin; with either unset, /admin is switched off.
    admin_user: str = ""
    admin_password: str = ""
    redis_breaker_ms: int = DEFAULT_REDIS_BREAKER_MS
    log_format: str = DEFAULT_LOG_FORMAT
    metrics_dir: str = ""  # prometheus multiprocess files; empty: a directory under the system's temp dir
    metrics_cache_ms: int = DEFAULT_METRICS_CACHE_MS
    worker_metrics_host: str = DEFAULT_WORKER_METRICS_HOST
    worker_metrics_port: int = DEFAULT_WORKER_METRICS_PORT
    health_timeout_ms: int = DEFAULT_HEALTH_TIMEOUT_MS

    def __post_init__(self):
        self._check()

    # -- derived values ---------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The reporting timezone: the day an event is counted under."""
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL, or the embedded SQLite file under the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'tracker.db').resolve()}"

    @property
    def link_base_url(self) -> str:
        """Where signed click links point: TRACKER_PUBLIC_URL, else where this server listens.

        Never a request's Host header: a client chooses it, and a link signed for the host it
        names would make /c an open redirect to that host.
        """
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def effective_broker_url(self) -> str | None:
        """The Dramatiq broker: its own URL, else the event Redis."""
        return self.broker_url or self.redis_url

    def replace(self, **changes) -> Settings:
        """A copy with some values changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from TRACKER_* variables, the URLs and the legacy PHP variables."""
        env = os.environ if environ is None else environ
        values: dict = {
            "redis_url": _redis_url(env),
            "broker_url": env.get("TRACKER_BROKER_URL") or None,
            "database_url": _database_url(env),
        }
        for field in dataclasses.fields(cls):
            raw = env.get(f"TRACKER_{field.name.upper()}")
            if raw is not None and field.name not in values:
                values[field.name] = _convert(field, raw)
        return cls(**values)

    def _check(self):
        positive = ("shards", "batch_size", "reads_per_commit", "lease_ttl_ms", "tick_interval_ms",
                    "redis_connect_timeout_ms", "redis_timeout_ms", "max_body_bytes", "web_threads",
                    "web_processes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigurationError(f"TRACKER_{name.upper()} must be at least 1, got {getattr(self, name)}")
        if self.drain_budget_ms < 0 or self.drain_poll_ms < 0:
            raise ConfigurationError("TRACKER_DRAIN_BUDGET_MS and TRACKER_DRAIN_POLL_MS cannot be negative")
        if self.lease_ttl_ms <= self.drain_poll_ms:
            raise ConfigurationError("TRACKER_LEASE_TTL_MS must be longer than TRACKER_DRAIN_POLL_MS")
        if self.retention_ms < 0 or self.trim_max_len < 0 or self.trim_interval_ms < 1 or self.redis_breaker_ms < 0:
            raise ConfigurationError("TRACKER_RETENTION_MS, TRACKER_TRIM_MAX_LEN and TRACKER_REDIS_BREAKER_MS cannot "
                                     "be negative, TRACKER_TRIM_INTERVAL_MS must be at least 1")
        if bool(self.admin_user) != bool(self.admin_password):
            raise ConfigurationError("set both TRACKER_ADMIN_USER and TRACKER_ADMIN_PASSWORD, or neither")
        if ":" in self.admin_user:
            raise ConfigurationError("TRACKER_ADMIN_USER cannot contain ':' (HTTP basic auth splits on it)")
        self._check_observability()
        if any(c in self.namespace for c in "{}"):
            raise ConfigurationError("TRACKER_NAMESPACE cannot contain braces: they select Redis Cluster hash slots")
        try:
            self.tz
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ConfigurationError(f"unknown timezone TRACKER_TIMEZONE={self.timezone!r}") from e
        self._check_edge()

    def _check_edge(self):
        """The publisher-facing settings: batch, dedupe, filtering, signing, rate limits."""
        for name in ("batch_max_events", "dedupe_window_ms", "rate_limit_window_ms"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"TRACKER_{name.upper()} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.clock_skew_ms <= self.dedupe_window_ms:
            raise ConfigurationError("TRACKER_CLOCK_SKEW_MS must be from 0 to TRACKER_DEDUPE_WINDOW_MS: an older "
                                     "event's retry could no longer be recognised")
        if self.bot_filter not in BOT_FILTERS:
            raise ConfigurationError(f"TRACKER_BOT_FILTER must be one of {', '.join(BOT_FILTERS)}, got {self.bot_filter!r}")
        if self.rate_limit < 0:
            raise ConfigurationError("TRACKER_RATE_LIMIT cannot be negative (0 turns it off)")
        if self.rate_limit and not self.ip_hash_key:
            raise ConfigurationError("TRACKER_RATE_LIMIT needs TRACKER_IP_HASH_KEY, a secret that keeps client IPs "
                                     "out of Redis (e.g. the output of: openssl rand -hex 32)")
        for name in ("click_secret", "link_api_token", "ip_hash_key"):
            if getattr(self, name) and len(getattr(self, name)) < MIN_SECRET_CHARS:
                raise ConfigurationError(f"TRACKER_{name.upper()} must have at least {MIN_SECRET_CHARS} characters")
        try:
            self.trusted_networks
        except ValueError as e:
            raise ConfigurationError(f"TRACKER_TRUSTED_PROXIES: {e}") from e

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """TRACKER_TRUSTED_PROXIES as networks (a bare IP is a network of one address)."""
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in self.trusted_proxies.split(",") if part.strip())

    def _check_observability(self):
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"TRACKER_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            raise ConfigurationError(f"TRACKER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if self.metrics_cache_ms < 0 or self.health_timeout_ms < 1:
            raise ConfigurationError("TRACKER_METRICS_CACHE_MS cannot be negative, TRACKER_HEALTH_TIMEOUT_MS must be at least 1")
        if not 0 <= self.worker_metrics_port <= 65535:
            raise ConfigurationError(f"TRACKER_WORKER_METRICS_PORT must be a port number (0: off), got {self.worker_metrics_port}")


def _convert(field: dataclasses.Field, raw: str):
    kind = field.type if isinstance(field.type, str) else field.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as e:
        raise ConfigurationError(f"TRACKER_{field.name.upper()} must be an integer, got {raw!r}") from e
    return raw


def _redis_url(env: Mapping[str, str]) -> str | None:
    """REDIS_URL, or the legacy REDIS_HOST/REDIS_PORT pair of the PHP system."""
    url = env.get("REDIS_URL") or None
    host = env.get("REDIS_HOST")
    if host is None:
        return url
    legacy = f"redis://{host}:{env.get('REDIS_PORT', '6379')}/0"
    if url and url != legacy:
        raise ConfigurationError("both REDIS_URL and REDIS_HOST are set, and they disagree; set one")
    return url or legacy


def _database_url(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL, or the legacy DB_HOST/DB_USER/DB_PASS/DB_NAME of the PHP system."""
    url = env.get("DATABASE_URL") or None
    host = env.get("DB_HOST")
    if host is None:
        return url
    if url:
        raise ConfigurationError("both DATABASE_URL and DB_HOST are set; set one")
    user = urllib.parse.quote(env.get("DB_USER", "root"), safe="")
    password = urllib.parse.quote(env.get("DB_PASS", ""), safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@"
    port = f":{env['DB_PORT']}" if env.get("DB_PORT") else ""
    return f"mysql://{credentials}{host}{port}/{env.get('DB_NAME', 'ad_tracking')}"
