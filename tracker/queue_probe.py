"""The size of Dramatiq's dead-letter queue, where drain messages go when their retries run out.

Read for `tracker status` and /metrics, from whichever broker TRACKER_BROKER_URL names:

    Redis      the sorted set `<namespace>:<queue>.XQ` (ZCARD), on the event Redis or its own
    RabbitMQ   the queue `<queue>.XQ` (a passive declare on a short-lived connection)
"""

from __future__ import annotations

from dataclasses import dataclass

import pika
import pika.exceptions
import redis
from redis import Redis

from .config import Settings
from .errors import BrokerUnavailable, TrackerError
from .streams import redis_errors

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
AMQP_SCHEMES = ("amqp://", "amqps://")
#: RabbitMQ's answer to a passive declare of a queue that does not exist (yet).
NOT_FOUND = 404


@dataclass
class DeadLetterQueue:
    key: str  # the sorted set's key (Redis) or the queue's name (RabbitMQ)
    messages: int | None  # None: the broker could not be read
    error: str | None = None


class RedisDeadLetters:
    def __init__(self, client: Redis, namespace: str, queue: str):
        self.client = client
        self.key = f"{namespace}:{queue}.XQ"

    def count(self) -> int:
        with redis_errors():
            return self.client.zcard(self.key)


class RabbitDeadLetters:
    def __init__(self, url: str, queue: str, timeout_s: float):
        self.url = url
        self.key = f"{queue}.XQ"
        self.timeout_s = timeout_s

    def count(self) -> int:
        params = pika.URLParameters(self.url)
        params.socket_timeout = params.blocked_connection_timeout = self.timeout_s
        params.connection_attempts = 1
        try:
            connection = pika.BlockingConnection(params)
        except pika.exceptions.AMQPError as e:
            raise BrokerUnavailable(f"RabbitMQ unavailable: {e!r}") from e
        try:
            return connection.channel().queue_declare(self.key, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as e:
            if e.reply_code == NOT_FOUND:  # no worker has declared it yet: nothing dead-lettered
                return 0
            raise BrokerUnavailable(f"RabbitMQ refused to show {self.key}: {e!r}") from e
        except pika.exceptions.AMQPError as e:
            raise BrokerUnavailable(f"RabbitMQ unavailable: {e!r}") from e
        finally:
            if connection.is_open:
                connection.close()


class DeadLetterProbe:
    """Reads one broker's dead-letter queue; a failure is reported, not raised."""

    def __init__(self, queue: RedisDeadLetters | RabbitDeadLetters):
        self.queue = queue

    def read(self) -> DeadLetterQueue:
        try:
            return DeadLetterQueue(self.queue.key, self.queue.count())
        except TrackerError as e:
            return DeadLetterQueue(self.queue.key, None, str(e))


def dead_letter_probe(settings: Settings, client: Redis, client_url: str) -> DeadLetterProbe | None:
    """The probe of the broker's dead-letter queue: on `client` (whose URL is `client_url`) when the
    broker is the event Redis, on a connection of its own otherwise; None for another broker."""
    url = settings.broker_url
    timeout = settings.health_timeout_ms / 1000
    if url and url.startswith(AMQP_SCHEMES):
        return DeadLetterProbe(RabbitDeadLetters(url, settings.queue_name, timeout))
    if url and not url.startswith(REDIS_SCHEMES):
        return None
    if url and url != client_url:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return DeadLetterProbe(RedisDeadLetters(client, settings.broker_namespace, settings.queue_name))
