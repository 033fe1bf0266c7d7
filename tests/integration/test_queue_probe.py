"""The size of Dramatiq's dead-letter queue on a RabbitMQ broker (the one running on this machine)."""

from __future__ import annotations

import os
import secrets
import socket

import pika
import pytest

from tests.conftest import service_missing
from tests.processes import free_port
from tracker.config import Settings
from tracker.queue_probe import DeadLetterProbe, RabbitDeadLetters, dead_letter_probe

pytestmark = pytest.mark.integration

#: The RabbitMQ the tests use (guest may connect only from localhost, which is where it runs).
TEST_AMQP_URL = os.environ.get("TRACKER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def amqp_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as e:
        service_missing("RabbitMQ", e)
    return TEST_AMQP_URL


def test_counts_the_messages_of_the_dead_letter_queue(amqp_url):
    # Given a queue's dead-letter queue, declared as Dramatiq declares it, holding 3 messages
    queue = f"tracker-test-{secrets.token_hex(3)}"
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(f"{queue}.XQ", durable=True, arguments={"x-message-ttl": 86_400_000})
    try:
        for i in range(3):
            channel.basic_publish("", f"{queue}.XQ", f"message {i}".encode())
        probe = dead_letter_probe(Settings(broker_url=amqp_url, queue_name=queue), client=None, client_url="")
        # When it is read, Then
        dlq = probe.read()
        assert (dlq.key, dlq.messages, dlq.error) == (f"{queue}.XQ", 3, None)
    finally:
        channel.queue_delete(f"{queue}.XQ")
        connection.close()


def test_a_queue_not_declared_yet_holds_no_dead_letters(amqp_url):
    probe = DeadLetterProbe(RabbitDeadLetters(amqp_url, f"tracker-test-{secrets.token_hex(3)}", 2))
    assert probe.read().messages == 0


def test_an_unreachable_broker_is_reported_not_raised():
    probe = DeadLetterProbe(RabbitDeadLetters(f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F", "tracker", 1))
    dlq = probe.read()
    assert dlq.messages is None and dlq.error.startswith("RabbitMQ unavailable")
