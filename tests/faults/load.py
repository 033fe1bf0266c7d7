"""Producers for the fault scenarios: XADD bursts straight into Redis, or HTTP clients of `tracker serve`.

Each records in a `Ledger` what it sent and what it was told was stored, and nothing else: the
scenario compares that with the database.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable

import redis

from tests.faults.accounting import Ledger
from tracker.events import CLICK, IMPRESSION
from tracker.streams import Layout, Producer


def random_events(rng: random.Random, n: int, ads: int) -> list[tuple]:
    """`n` (kind, ad_id) pairs, three impressions to a click."""
    return [(rng.choice((IMPRESSION, IMPRESSION, IMPRESSION, CLICK)), rng.randint(1, ads)) for _ in range(n)]


class XaddLoad(threading.Thread):
    """Stores `events` events in Redis over about `seconds`, in pipelined bursts of XADD."""

    def __init__(self, client: redis.Redis, ledger: Ledger, events: int, seconds: float, seed: int = 1,
                 ads: int = 500, bursts: int = 200, layout: Layout | None = None):
        super().__init__(name="xadd-load", daemon=True)
        self.producer = Producer(client, layout or Layout())
        self.client = client
        self.ledger = ledger
        self.events, self.seconds, self.bursts, self.ads = events, seconds, bursts, ads
        self.rng = random.Random(seed)
        self.error: BaseException | None = None

    def run(self) -> None:
        start = time.monotonic()
        try:
            for i in range(self.bursts):
                self._burst(self.events // self.bursts + (1 if i < self.events % self.bursts else 0))
                time.sleep(max(0.0, start + (i + 1) * self.seconds / self.bursts - time.monotonic()))
        except BaseException as e:  # the scenario reports it
            self.error = e

    def _burst(self, n: int) -> None:
        events = random_events(self.rng, n, self.ads)
        pipe = self.client.pipeline(transaction=False)
        now = int(time.time())
        for kind, ad_id in events:
            self.producer.add(kind, ad_id, now, pipeline=pipe)
        self.ledger.attempt(n)
        pipe.execute()
        self.ledger.ack_all((kind.plural, ad_id) for kind, ad_id in events)

    def finish(self, timeout: float = 300) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the producer did not finish"
        if self.error:
            raise self.error


class HttpClient:
    """One HTTP/1.1 keep-alive connection to `tracker serve`; reconnects after any failure."""

    def __init__(self, port: int, timeout: float = 10):
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, body), or raises OSError / http.client.HTTPException."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.connection.request(method, path, body, headers or {})
            response = self.connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class HttpLoad:
    """`clients` threads, each sending its share of events until each got a 200; 503s are retried.

    `request_for(kind, ad_id, seq)` gives (method, path, body, headers) for one event; it is sent
    again, unchanged, on every retry of that event.
    """

    def __init__(self, port: int, ledger: Ledger, events: int, seconds: float, clients: int = 4, seed: int = 2,
                 ads: int = 200, request_for: Callable | None = None):
        self.port = port
        self.ledger = ledger
        self.seconds = seconds
        self.request_for = request_for or get_request
        rng = random.Random(seed)
        plan = list(enumerate(random_events(rng, events, ads)))
        self.shares = [plan[i::clients] for i in range(clients)]
        self.threads = [threading.Thread(target=self._client, args=(share,), daemon=True) for share in self.shares]
        self.retries = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> HttpLoad:
        for thread in self.threads:
            thread.start()
        return self

    def _client(self, share) -> None:
        client = HttpClient(self.port)
        start = time.monotonic()
        for i, (seq, (kind, ad_id)) in enumerate(share):
            self.ledger.attempt()
            self._send_until_stored(client, kind, ad_id, seq)
            time.sleep(max(0.0, start + (i + 1) * self.seconds / len(share) - time.monotonic()))
        client.close()

    def _send_until_stored(self, client: HttpClient, kind, ad_id: int, seq: int) -> None:
        method, path, body, headers = self.request_for(kind, ad_id, seq)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, _, payload = client.request(method, path, body, headers)
            except (OSError, http.client.HTTPException) as e:
                # The answer was lost: the event may or may not be stored. Retrying is what a
                # client does; the figures show whether that double counts.
                status, payload = None, str(e).encode()
            if status == 200:
                self.ledger.ack(kind.plural, ad_id)
                return
            if status not in (None, 503):
                with self._lock:
                    self.errors.append(f"{status} {payload[:200]!r}")
                return
            with self._lock:
                self.retries += 1
            time.sleep(0.05)
        with self._lock:
            self.errors.append(f"event {seq} never stored")

    def finish(self, timeout: float = 300) -> None:
        for thread in self.threads:
            thread.join(timeout)
            assert not thread.is_alive(), "an HTTP client did not finish"
        assert not self.errors, self.errors[:5]


def get_request(kind, ad_id: int, seq: int):
    """The PHP system's GET request for one event."""
    path = "/track_impression.php" if kind is IMPRESSION else "/track_click.php"
    return "GET", f"{path}?ad_id={ad_id}", None, {}


def idempotent_request(kind, ad_id: int, seq: int):
    """A JSON POST carrying an event id, the same on every retry: a retry is never stored twice."""
    return ("POST", f"/v1/{kind.plural}?event_id=fault-c-event-{seq:08d}", json.dumps({"ad_id": ad_id}).encode(),
            {"Content-Type": "application/json"})


#: The streams and groups the kill helpers watch (one shard per kind in the fault scenarios).
WATCHED = (("impressions_stream", "impression_group"), ("clicks_stream", "click_group"))


def delivered_marks(client: redis.Redis) -> dict[str, bytes]:
    """Each watched stream's last delivered entry ID: what was read before this moment."""
    marks = {}
    for stream, group in WATCHED:
        groups = {g["name"]: g for g in client.xinfo_groups(stream)}
        marks[stream] = groups[group.encode()]["last-delivered-id"]
    return marks


def read_since(client: redis.Redis, marks: dict[str, bytes]) -> int:
    """Entries read after `marks` and not yet acknowledged: a batch in flight now."""
    return sum(len(client.xpending_range(stream, group, min=b"(" + marks[stream], max="+", count=10_000))
               for stream, group in WATCHED)


def kill_mid_batch(process, client: redis.Redis, timeout_s: float = 3) -> int:
    """SIGKILL `process` as soon as it holds entries it read after this call (or after `timeout_s`).

    Entries a killed predecessor left pending do not count: only a read made after the call, not
    yet acknowledged, is a batch in flight. Returns how many such entries the kill left pending
    (0: the kill did not land mid-batch).
    """
    marks = delivered_marks(client)
    deadline = time.monotonic() + timeout_s
    while read_since(client, marks) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    process.kill()  # no cleanup runs: leases, flags and pending entries stay behind
    return read_since(client, marks)
