"""Rate limiting per client IP: a fixed-window event counter in Redis.

Key layout (NS is the namespace prefix):

    NS tracker:rate:<hash>     events counted for one client in the current window, PX window

`<hash>` is HMAC-SHA256(TRACKER_IP_HASH_KEY, client IP), truncated to 128 bits: Redis never
holds an IP address, and without the key (which lives only in the web processes' settings) the
hashes cannot be turned back into addresses by trying every IPv4 address. Each counter
expires with its window.

The increment rides in the same pipeline as the request's store (see `tracker/intake.py`), so
the limit costs no extra round trip. The price is precision: a request is checked against what
this process already knows, and learns the count that includes it only once it is stored. When
that count is over the limit, the process remembers the client until the window ends and
refuses its requests with 429 before any Redis work. A client can therefore exceed its limit by
the requests it has in flight when it crosses it (at most one per web thread of each process),
never by more.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time

from redis import Redis

from .errors import RateLimited
from .streams import queue_script

# Count `ARGV[1]` events; the first increment of a window starts its expiry. Returns the count
# and the milliseconds left in the window.
_HIT = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
end
return {n, ttl}
"""

#: Clients over their limit that one process remembers at most (older ones are forgotten first).
MAX_REMEMBERED = 100_000


class RateLimiter:
    """At most `limit` events per `window_ms` per client IP."""

    def __init__(self, client: Redis, limit: int, window_ms: int, ip_hash_key: str, namespace: str = "",
                 clock=time.monotonic):
        self.limit = limit
        self.window_ms = window_ms
        self.namespace = namespace
        self.clock = clock
        self._key = ip_hash_key.encode()
        self._hit = client.register_script(_HIT)
        self._blocked: dict[str, float] = {}  # client key -> clock value when its window ends
        self._lock = threading.Lock()

    def key(self, ip: str) -> str:
        """The client's counter key: a keyed hash of its IP, never the IP itself."""
        digest = hmac.new(self._key, ip.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.namespace}tracker:rate:{digest}"

    def check(self, ip: str) -> None:
        """Raise RateLimited if this client went over its limit in the current window."""
        until = self._blocked.get(self.key(ip))
        if until is None:
            return
        left = until - self.clock()
        if left > 0:
            raise RateLimited(max(1, math.ceil(left)))
        self._blocked.pop(self.key(ip), None)

    def queue(self, pipe, ip: str, events: int) -> None:
        """Queue the count of this request's events on `pipe` (its reply goes to `settle`)."""
        queue_script(pipe, self._hit, [self.key(ip)], [max(1, events), self.window_ms])

    def settle(self, ip: str, reply) -> None:
        """Remember the client until its window ends if the count, this request included, is over the limit."""
        count, ttl_ms = int(reply[0]), int(reply[1])
        if count > self.limit:
            self._remember(self.key(ip), self.clock() + ttl_ms / 1000)

    def _remember(self, key: str, until: float) -> None:
        with self._lock:
            if len(self._blocked) >= MAX_REMEMBERED:
                now = self.clock()
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
                while len(self._blocked) >= MAX_REMEMBERED:
                    self._blocked.pop(next(iter(self._blocked)))
            self._blocked[key] = until
