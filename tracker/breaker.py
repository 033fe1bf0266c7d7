"""A circuit breaker in front of the event store: fail fast while Redis does not answer.

The ingest client's timeouts bound one request (TRACKER_REDIS_TIMEOUT_MS), but not the queue:
with Redis stalled, every waitress thread waits out its timeout, and requests queued behind
them wait for a thread first; measured with 100 concurrent requests on 8 threads, the last
answered its 503 after ~13 s. With the breaker, the first timeout opens the circuit: for
TRACKER_REDIS_BREAKER_MS, requests answer 503 at once without touching Redis. Then one
request probes: if Redis answers, the circuit closes; if not, it stays open for another period.
While Redis stalls, at most one thread per web process waits on it.

Only a timeout or a lost connection opens it. A fast refusal (OOM under `noeviction`, a
read-only replica) is already a fast 503, and is left to Redis to decide request by request.

A request refused by the open circuit was never sent to Redis: it is certainly not stored. A
request whose command timed out may still be applied when a stalled Redis wakes up (the
command sits in its socket buffer); its client got a 503 and retries, which is why ingest
with event ids (`Producer.store`) dedupes retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from .errors import StreamUnavailable

log = logging.getLogger(__name__)


def _is_slow_failure(error: StreamUnavailable) -> bool:
    """A timeout or a lost connection underneath (through any StreamUnavailable re-raised on the
    way, as the group commit does for each caller of a failed flush)."""
    cause = error.__cause__
    while isinstance(cause, StreamUnavailable):
        cause = cause.__cause__
    return isinstance(cause, (redis.TimeoutError, redis.ConnectionError))


class Breaker:
    """Opens for `open_ms` after a timeout or a lost connection; 0 disables it."""

    def __init__(self, open_ms: int, clock: Callable[[], float] = time.monotonic):
        self.open_s = open_ms / 1000
        self.clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._probing = False

    @property
    def closed(self) -> bool:
        return not self._open_until

    def call(self, fn: Callable, *args, **kwargs):
        """Run `fn` unless the circuit is open (then raise StreamUnavailable at once)."""
        probe = self._admit()
        try:
            result = fn(*args, **kwargs)
        except StreamUnavailable as e:
            self._settle(probe, redis_alive=not _is_slow_failure(e))
            raise
        except BaseException:
            self._settle(probe, redis_alive=None)  # tells nothing about Redis
            raise
        self._settle(probe, redis_alive=True)
        return result

    def _admit(self) -> bool:
        """Let the call through (True if it is the probe), or raise if the circuit is open."""
        if self.closed or not self.open_s:
            return False
        with self._lock:
            if self.closed:
                return False
            if self._probing or self.clock() < self._open_until:
                raise StreamUnavailable("Redis did not answer in time recently: failing fast until it does")
            self._probing = True
            return True

    def _settle(self, probe: bool, redis_alive: bool | None) -> None:
        if not self.open_s or (self.closed and redis_alive is not False and not probe):
            return  # the common case, without the lock
        with self._lock:
            if redis_alive is False:
                if self.closed:
                    log.warning("Redis timed out or dropped the connection: ingest answers 503 at once for "
                                "%.1fs, then probes", self.open_s)
                self._open_until = self.clock() + self.open_s
            elif redis_alive and not self.closed:
                log.warning("Redis answers again: ingest resumes")
                self._open_until = 0.0
            if probe:
                self._probing = False
