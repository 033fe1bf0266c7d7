"""Group commit: the stores of concurrent requests share one pipelined round trip to Redis (on by
default; TRACKER_GROUP_COMMIT=0 turns it off).

A lone XADD from Python costs a full round trip (~50-200 us, mostly waiting) plus redis-py's own
work per call; pipelined, a command costs a few microseconds. `GroupCommit.store` gives every
request thread the answer `Producer.store` would have given it, but a thread that finds a flush
already running does not send anything itself: it queues its events and waits. The first thread
that finds no flush running becomes the leader: it takes every queued call (its own included),
stores all their events with one `Producer.store` (one pipeline), hands each caller its own
results (or its own error), and then passes the leadership to the first call that queued
meanwhile, if any. No thread of ours runs in the background, and nothing waits for a timer: a
lone request is stored at once, and under load the batches grow by themselves while a round
trip is in flight.

What a caller is told stays exact: a call returns only after the pipeline carrying its events
was answered, so a 200 still means stored. If the round trip fails, every call of that batch
gets the error (a 503 for each request: none can be said stored); if Redis refuses some events
of the pipeline (out of memory midway), only their callers get an error, and the others their
results. `Producer.store_each` is the single batching point, so whatever it queues per event
(dedupe scripts, and any other per-event Redis work) rides in the same pipeline.

(A dedicated flusher thread fed by a queue was measured by the design study to gain nothing:
it adds two thread hand-offs per request. The leader scheme adds none for the leader and one
wake-up per waiting call.)
"""

from __future__ import annotations

import _thread
import threading

from .errors import StreamUnavailable
from .streams import NewEvent, Producer, Stored


class _Call:
    """One caller's events, and what became of them."""

    __slots__ = ("events", "results", "error", "leads", "_done")

    def __init__(self, events: list[NewEvent]):
        self.events = events
        self.results: list[Stored] | None = None
        self.error: BaseException | None = None
        self.leads = False
        self._done = _thread.allocate_lock()
        self._done.acquire()

    def wait(self) -> None:
        # Bounded without a timeout of its own: the flush that resolves this call is a Redis
        # pipeline, bounded by the client's pool and socket timeouts, and always resolves
        # every call of its batch (see GroupCommit._flush).
        self._done.acquire()

    def wake(self) -> None:
        self._done.release()

    def outcome(self) -> list[Stored]:
        if self.error is None:
            return self.results
        if isinstance(self.error, StreamUnavailable):
            raise StreamUnavailable(str(self.error)) from self.error  # an exception object per thread
        raise self.error


class GroupCommit:
    """`Producer.store` and `Producer.add` for many threads, grouped into shared pipelines."""

    def __init__(self, producer: Producer):
        self.producer = producer
        self._lock = threading.Lock()
        self._queued: list[_Call] = []
        self._flushing = False

    def __getattr__(self, name: str):
        """Everything else is the producer's own (client, layout, queue, results ...)."""
        return getattr(self.producer, name)

    def store(self, events: list[NewEvent]) -> list[Stored]:
        """Store `events` (as Producer.store), sharing the round trip with concurrent callers."""
        if not events:
            return []
        call = _Call(events)
        with self._lock:
            self._queued.append(call)
            leads = call.leads = not self._flushing
            self._flushing = True
        if not leads:
            call.wait()  # until stored, or until handed the leadership
        if call.leads:
            self._lead()
        return call.outcome()

    def _lead(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
        try:
            self._flush(batch)
        finally:
            with self._lock:
                if self._queued:
                    successor = self._queued[0]
                    successor.leads = True
                    successor.wake()
                else:
                    self._flushing = False

    def _flush(self, batch: list[_Call]) -> None:
        """Store the events of every call in one round trip; resolve each call, whatever happens."""
        try:
            outcomes = self.producer.store_each([event for call in batch for event in call.events])
            start = 0
            for call in batch:
                mine = outcomes[start:start + len(call.events)]
                start += len(call.events)
                errors = [outcome for outcome in mine if isinstance(outcome, Exception)]
                # One caller's refused event is that caller's error alone: the others' events
                # were stored, and answering them an error would make their clients store again.
                if errors:
                    call.error = errors[0]
                else:
                    call.results = mine
        except BaseException as e:
            for call in batch:
                call.error = e
            if not isinstance(e, Exception):
                raise
        finally:
            for call in batch:
                if call.results is None and call.error is None:
                    call.error = StreamUnavailable("the event store gave no answer for this event")
                if not call.leads:
                    call.wake()
