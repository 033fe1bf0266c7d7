"""The once-a-second tick that keeps every shard drained.

Dramatiq has no sub-minute scheduler, so every worker process runs a `TickThread` (started by
`SchedulerMiddleware.after_worker_boot`). Only the process holding the leader lock sends: once
per interval, a `drain` message for each shard that has none queued or running. The "queued or
running" flag ({S}:queued) is set here with SET NX, kept alive by the running drain, and cleared
when it ends, so slow drains never pile messages up. If a worker dies with the flag set, the
flag's TTL runs out and the next tick sends a new drain.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dramatiq
from redis import Redis

from .drainer import DrainReport
from .errors import StreamUnavailable
from .lease import Lease
from .streams import Layout, Shard, ensure_groups, redis_errors

log = logging.getLogger(__name__)

#: The leader lock outlives this many missed ticks before another process takes over.
LEADER_TTL_TICKS = 3
#: Seconds between repeated "cannot tick" warnings while Redis is unreachable.
WARN_EVERY_S = 30


class DrainFlags:
    """The per-shard "a drain is queued or running" flags."""

    def __init__(self, client: Redis, ttl_ms: int):
        self.client = client
        self.ttl_ms = ttl_ms

    def claim(self, shard: Shard) -> bool:
        """Set the flag if unset; True when the caller should send a drain."""
        with redis_errors():
            return bool(self.client.set(shard.queued_key, int(time.time() * 1000), nx=True, px=self.ttl_ms))

    def refresh(self, shard: Shard) -> None:
        """Called by a running drain: it is still alive (and the flag is set again if anything
        removed it, so the tick does not send a second drain beside a running one)."""
        with redis_errors():
            self.client.set(shard.queued_key, int(time.time() * 1000), px=self.ttl_ms)

    def hold(self, shard: Shard, ms: int) -> None:
        """Keep the flag for `ms` (a failed drain waits out its retry backoff)."""
        with redis_errors():
            self.client.set(shard.queued_key, int(time.time() * 1000), px=max(ms, 1))

    def clear(self, shard: Shard) -> None:
        with redis_errors():
            self.client.delete(shard.queued_key)

    def after_drain(self, shard: Shard, report: DrainReport, send_next: Callable[[Shard], None]) -> None:
        """Settle the flag once a drain has returned.

        - Another drainer held the lease (busy) or took it over (lost_lease): that drainer's
          flag, left alone; were it cleared, the tick would send a drain every second for as
          long as that one runs, each finding the shard busy.
        - It counted something: more is probably waiting, so it sends the next drain at once,
          keeping the flag (waiting for the tick would leave the shard undrained for up to a
          tick). If the send fails the flag is cleared and the tick takes over.
        - It found nothing: the flag is cleared, and the tick sends the next one.
        """
        if report.busy or report.lost_lease:
            return
        if not report.entries:
            self.clear(shard)
            return
        try:
            send_next(shard)
        except Exception:
            log.warning("could not send the next drain of %s; the tick will", shard.key, exc_info=True)
            self.clear(shard)


@dataclass
class Periodic:
    """A message the leader sends every `every_ms` (trimming, for instance)."""

    name: str
    every_ms: int
    send: Callable[[], None]
    last_ms: float = 0.0


class Scheduler:
    """One tick's work: be the leader, then send what is due."""

    def __init__(self, client: Redis, layout: Layout, flags: DrainFlags, send_drain: Callable[[Shard], None],
                 interval_ms: int, periodic: Sequence[Periodic] = ()):
        self.client = client
        self.layout = layout
        self.flags = flags
        self.send_drain = send_drain
        self.leader = Lease(client, layout.tick_leader_key, interval_ms * LEADER_TTL_TICKS)
        self.periodic = list(periodic)
        self._groups_ready = False

    def tick(self) -> list[Shard]:
        """Send a drain for each idle shard if this process leads; returns the shards sent."""
        if not self.leader.acquire_or_renew():
            return []
        if not self._groups_ready:
            ensure_groups(self.client, self.layout)
            self._groups_ready = True
        sent = []
        for shard in self.layout.shards():
            if self.flags.claim(shard):
                try:
                    self.send_drain(shard)
                except Exception:
                    self.flags.clear(shard)
                    raise
                sent.append(shard)
        self._send_periodic()
        return sent

    def _send_periodic(self) -> None:
        now = time.monotonic() * 1000
        for job in self.periodic:
            if now - job.last_ms >= job.every_ms:
                job.send()
                job.last_ms = now

    def resign(self) -> None:
        """Give up leadership (on shutdown), so another process takes over at once."""
        try:
            self.leader.release()
        except StreamUnavailable:
            pass


class TickThread(threading.Thread):
    """Runs `scheduler.tick()` every interval until stopped. Never dies on an error."""

    def __init__(self, scheduler: Scheduler, interval_ms: int):
        super().__init__(name="tracker-tick", daemon=True)
        self.scheduler = scheduler
        self.interval_s = interval_ms / 1000
        self.stopped = threading.Event()
        self._last_warning = 0.0

    def run(self) -> None:
        while not self.stopped.wait(self._until_next_tick()):
            try:
                self.scheduler.tick()
            except Exception as e:  # keep ticking: Redis or the broker may come back
                self._warn(e)

    def _until_next_tick(self) -> float:
        # Tick on whole intervals of the wall clock, so that a restart keeps the rhythm.
        return self.interval_s - (time.time() % self.interval_s)

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning("tick failed, will keep trying every %.1fs: %s", self.interval_s, error,
                        exc_info=not isinstance(error, StreamUnavailable))

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval_s * 2)
        self.scheduler.resign()


class SchedulerMiddleware(dramatiq.Middleware):
    """Starts the tick thread in every worker process, and stops it on shutdown."""

    def __init__(self, make_scheduler: Callable[[], Scheduler], interval_ms: int):
        self.make_scheduler = make_scheduler
        self.interval_ms = interval_ms
        self.thread: TickThread | None = None

    def after_worker_boot(self, broker, worker):
        self.thread = TickThread(self.make_scheduler(), self.interval_ms)
        self.thread.start()

    def before_worker_shutdown(self, broker, worker):
        if self.thread is not None:
            self.thread.stop()
            self.thread = None
