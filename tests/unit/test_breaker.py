"""The circuit breaker in front of ingest's Redis: open on a timeout, fail fast, probe, close."""

import threading

import pytest
import redis

from tracker.breaker import Breaker
from tracker.errors import StreamUnavailable


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def failing(cause):
    def fn():
        try:
            raise cause
        except Exception as e:
            raise StreamUnavailable(str(e)) from e
    return fn


def timeout():
    return failing(redis.TimeoutError("Timeout reading from socket"))()


def ok():
    return "stored"


@pytest.fixture
def clock():
    return Clock()


def test_a_timeout_opens_the_circuit_and_later_calls_fail_without_touching_redis(clock):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(timeout)
    calls = []
    with pytest.raises(StreamUnavailable, match="failing fast"):
        breaker.call(lambda: calls.append(1))
    assert calls == [] and not breaker.closed


def test_after_the_period_one_probe_goes_through_and_success_closes(clock):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(timeout)
    clock.now += 1.001
    assert breaker.call(ok) == "stored" and breaker.closed
    assert breaker.call(ok) == "stored"


def test_a_failed_probe_opens_it_again(clock):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(timeout)
    clock.now += 1.5
    with pytest.raises(StreamUnavailable, match="Timeout"):
        breaker.call(timeout)  # the probe
    clock.now += 0.5
    with pytest.raises(StreamUnavailable, match="failing fast"):
        breaker.call(ok)


def test_only_one_probe_at_a_time(clock):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(timeout)
    clock.now += 2
    inside, release = threading.Event(), threading.Event()

    def slow_probe():
        inside.set()
        release.wait(5)
        return "stored"
    probe = threading.Thread(target=breaker.call, args=(slow_probe,))
    probe.start()
    inside.wait(5)
    with pytest.raises(StreamUnavailable, match="failing fast"):
        breaker.call(ok)
    release.set()
    probe.join(5)
    assert breaker.closed and breaker.call(ok) == "stored"


@pytest.mark.parametrize("message", ["OOM command not allowed when used memory > 'maxmemory'.",
                                     "READONLY You can't write against a read only replica."])
def test_a_fast_refusal_does_not_open_it(clock, message):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(failing(redis.ResponseError(message)))
    assert breaker.closed and breaker.call(ok) == "stored"


def test_a_lost_connection_opens_it_and_zero_disables_it(clock):
    breaker = Breaker(1_000, clock)
    with pytest.raises(StreamUnavailable):
        breaker.call(failing(redis.ConnectionError("Connection refused")))
    assert not breaker.closed
    off = Breaker(0, clock)
    for _ in range(3):
        with pytest.raises(StreamUnavailable, match="Timeout"):
            off.call(timeout)
    assert off.call(ok) == "stored"


def test_a_timeout_re_raised_by_the_group_commit_still_opens_the_circuit(clock):
    """The group commit gives each caller of a failed flush its own StreamUnavailable, chained to
    the flush's: the breaker must still see the timeout underneath."""
    breaker = Breaker(1_000, clock)

    def timed_out_in_a_shared_flush():
        try:
            try:
                raise redis.TimeoutError("Timeout reading from socket")
            except redis.TimeoutError as e:
                raise StreamUnavailable(f"Redis unavailable: {e}") from e
        except StreamUnavailable as flush_error:
            raise StreamUnavailable(str(flush_error)) from flush_error
    with pytest.raises(StreamUnavailable):
        breaker.call(timed_out_in_a_shared_flush)
    assert not breaker.closed
