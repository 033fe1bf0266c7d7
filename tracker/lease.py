"""Leases: a Redis key that names its holder, held for a bounded time.

Used for a shard's drain lease and for the scheduler's leader lock. A lease is taken with
SET NX PX and a random token, renewed and released only by the holder of that token
(compare-and-expire, compare-and-delete), so a holder that paused past its TTL cannot renew
or delete a lease someone else has taken since.
"""

from __future__ import annotations

import secrets

from redis import Redis

from .streams import redis_errors

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """A lease on `key` for `ttl_ms` milliseconds, identified by a random token."""

    def __init__(self, redis: Redis, key: str, ttl_ms: int):
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(16)
        self.held = False
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; True when this object now holds it."""
        with redis_errors():
            self.held = bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def renew(self) -> bool:
        """Extend the lease if it is still ours; False (and not held) when it was lost."""
        with redis_errors():
            self.held = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        return self.held

    def acquire_or_renew(self) -> bool:
        """Hold the lease after this call if at all possible (used by the leader loop)."""
        return self.renew() if self.held else self.acquire()

    def release(self) -> None:
        """Give the lease back if it is still ours."""
        if self.held:
            self.held = False
            with redis_errors():
                self._release(keys=[self.key], args=[self.token])
