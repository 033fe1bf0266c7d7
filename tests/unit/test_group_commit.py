"""Group commit: concurrent stores share one Producer.store call, each caller gets its own answer."""

import threading

import pytest

from tracker.errors import StreamUnavailable
from tracker.events import CLICK, IMPRESSION
from tracker.group_commit import GroupCommit
from tracker.streams import Layout, NewEvent, Producer, Stored, ensure_groups

TS = 1_795_500_000


class GatedProducer:
    """Stands in for Producer: records each store() call and can hold the first one open."""

    def __init__(self, fail: bool = False):
        self.layout = Layout()
        self.batches: list[list[NewEvent]] = []
        self.first_entered = threading.Event()
        self.release_first = threading.Event()
        self.fail = fail

    def store_each(self, events):
        self.batches.append(list(events))
        if len(self.batches) == 1:
            self.first_entered.set()
            assert self.release_first.wait(10)
        if self.fail:
            raise StreamUnavailable("Redis unavailable: connection refused")
        return [Stored(f"{event.ad_id}-{i}") for i, event in enumerate(events)]


def add(group: GroupCommit, kind, ad_id: int, ts: int) -> str:
    """Store one event through the group commit; its entry ID."""
    return group.store([NewEvent(kind, ad_id, ts)])[0].entry_id


def run_threads(target, n):
    results: list = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, target(i))) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads, results


def test_a_lone_call_is_stored_at_once_with_its_own_result(redis_client):
    layout = Layout()
    ensure_groups(redis_client, layout)
    group = GroupCommit(Producer(redis_client, layout))
    entry_id = add(group, IMPRESSION, 7, TS)
    stored = group.store([NewEvent(CLICK, 8, TS), NewEvent(CLICK, 9, TS)])
    assert [e[0].decode() for e in redis_client.xrange("impressions_stream")] == [entry_id]
    assert [e[0].decode() for e in redis_client.xrange("clicks_stream")] == [s.entry_id for s in stored]
    assert group.store([]) == []


def test_calls_arriving_during_a_flush_share_the_next_one_and_each_gets_its_results():
    producer = GatedProducer()
    group = GroupCommit(producer)
    # Given a leader whose flush is in flight
    leader, leader_result = run_threads(lambda i: add(group, IMPRESSION, 1000, TS), 1)
    assert producer.first_entered.wait(10)
    # When eight more calls arrive meanwhile (one of them with two events)
    waiting, results = run_threads(
        lambda i: group.store([NewEvent(IMPRESSION, i, TS)] + ([NewEvent(CLICK, 99, TS)] if i == 3 else [])), 8)
    while sum(len(call.events) for call in group._queued) < 9:
        threading.Event().wait(0.01)
    producer.release_first.set()
    for thread in leader + waiting:
        thread.join(10)
    # Then they were stored together, in one more store() call, and each got its own entries back
    assert [len(batch) for batch in producer.batches] == [1, 9]
    assert leader_result[0] == "1000-0"
    for i, stored in enumerate(results):
        assert stored[0].entry_id.startswith(f"{i}-")
    assert len(results[3]) == 2 and results[3][1].entry_id.startswith("99-")
    assert not group._flushing and not group._queued


def test_a_failed_flush_answers_an_error_to_every_caller_of_its_batch_and_the_next_call_works():
    producer = GatedProducer(fail=True)
    group = GroupCommit(producer)
    errors: list = []

    def call(i):
        try:
            return add(group, IMPRESSION, i + 1, TS)
        except StreamUnavailable as e:
            errors.append(e)
    leader, _ = run_threads(call, 1)
    assert producer.first_entered.wait(10)
    waiting, _ = run_threads(call, 4)
    while len(group._queued) < 4:
        threading.Event().wait(0.01)
    producer.release_first.set()
    for thread in leader + waiting:
        thread.join(10)
    assert len(errors) == 5 and len({id(e) for e in errors}) == 5  # an exception object per caller
    producer.fail = False
    assert add(group, IMPRESSION, 1, TS) == "1-0"


def test_an_unexpected_error_reaches_every_caller_and_frees_the_group():
    class Broken:
        layout = Layout()

        def store_each(self, events):
            raise ValueError("bug")
    group = GroupCommit(Broken())
    with pytest.raises(ValueError):
        add(group, IMPRESSION, 1, TS)
    assert not group._flushing


def test_many_threads_store_every_event_exactly_once(redis_client):
    layout = Layout()
    ensure_groups(redis_client, layout)
    group = GroupCommit(Producer(redis_client, layout))
    threads, results = run_threads(lambda i: [add(group, IMPRESSION, i % 50 + 1, TS) for _ in range(25)], 16)
    for thread in threads:
        thread.join(30)
    ids = [entry_id for per_thread in results for entry_id in per_thread]
    stored = [e[0].decode() for e in redis_client.xrange("impressions_stream")]
    assert len(ids) == 400 and sorted(ids) == sorted(stored) and len(set(stored)) == 400


def test_the_app_stores_through_the_group_when_it_is_on(settings, redis_client, sqlite_url):
    from tests.unit.test_web import make_runtime
    from tests.wsgi import call
    from tracker.web import create_app

    ensure_groups(redis_client, Layout())
    runtime = make_runtime(settings.replace(group_commit=1), redis_client, sqlite_url)
    assert isinstance(runtime.ingest_producer, GroupCommit)
    app = create_app(runtime)
    single = call(app, "GET", "/track_impression.php?ad_id=7")
    batch = call(app, "POST", "/v1/events", '[{"type":"click","ad_id":8},{"type":"click","ad_id":9}]',
                 "application/json")
    assert single.status == 200 and batch.status == 200
    assert [e[0].decode() for e in redis_client.xrange("impressions_stream")] == [single.json()["stream_id"]]
    assert [e[0].decode() for e in redis_client.xrange("clicks_stream")] == [
        e["stream_id"] for e in batch.json()["events"]]


def test_an_event_refused_midway_fails_only_its_own_caller():
    """Redis ran out of memory midway through a shared pipeline: the callers whose events were
    stored get their results (a 503 would make their clients store them again)."""
    class HalfFull(GatedProducer):
        def store_each(self, events):
            self.batches.append(list(events))
            return [Stored(f"{e.ad_id}-0") if e.ad_id != 666 else StreamUnavailable("Redis refuses writes: OOM")
                    for e in events]
    group = GroupCommit(HalfFull())
    call_ok, call_refused = group_commit_calls(group, [[NewEvent(CLICK, 1, TS)], [NewEvent(CLICK, 666, TS)]])
    assert call_ok.outcome() == [Stored("1-0")]
    with pytest.raises(StreamUnavailable):
        call_refused.outcome()


def group_commit_calls(group: GroupCommit, event_lists):
    """Flush several callers' events as one batch, as a leader would; their resolved calls."""
    from tracker.group_commit import _Call
    calls = [_Call(events) for events in event_lists]
    calls[0].leads = True
    group._flush(calls)
    return calls
