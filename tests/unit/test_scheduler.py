"""The tick: one leader, one drain per idle shard, no pile-up."""

import time

import pytest

from tracker.scheduler import DrainFlags, Periodic, Scheduler, TickThread
from tracker.streams import Layout


@pytest.fixture
def layout():
    return Layout(shards=2)


def make_scheduler(redis_client, layout, sent, periodic=()):
    flags = DrainFlags(redis_client, ttl_ms=10_000)
    return Scheduler(redis_client, layout, flags, sent.append, interval_ms=1_000, periodic=periodic)


def test_the_leader_sends_one_drain_per_shard(redis_client, layout):
    sent = []
    assert len(make_scheduler(redis_client, layout, sent).tick()) == 4
    assert sorted(s.key for s in sent) == ["clicks_stream", "clicks_stream:1", "impressions_stream",
                                           "impressions_stream:1"]


def test_only_one_process_sends(redis_client, layout):
    first, second = [], []
    a, b = make_scheduler(redis_client, layout, first), make_scheduler(redis_client, layout, second)
    for _ in range(3):
        a.tick()
        b.tick()
    assert len(first) == 4 and second == []


def test_a_resigned_leader_is_replaced(redis_client, layout):
    first, second = [], []
    a, b = make_scheduler(redis_client, layout, first), make_scheduler(redis_client, layout, second)
    a.tick()
    a.resign()
    for shard in layout.shards():
        a.flags.clear(shard)
    b.tick()
    assert len(second) == 4


def test_slow_drains_do_not_pile_up(redis_client, layout):
    sent = []
    scheduler = make_scheduler(redis_client, layout, sent)
    for _ in range(10):  # ten ticks while no drain finishes
        scheduler.tick()
    assert len(sent) == 4


def test_a_finished_drain_is_followed_by_the_next(redis_client, layout):
    sent = []
    scheduler = make_scheduler(redis_client, layout, sent)
    scheduler.tick()
    scheduler.flags.clear(layout.shard(sent[0].kind, sent[0].index))  # that drain finished
    assert scheduler.tick() == [sent[0]]


def test_a_flag_left_by_a_dead_worker_expires(redis_client, layout):
    sent = []
    scheduler = make_scheduler(redis_client, layout, sent)
    scheduler.flags = DrainFlags(redis_client, ttl_ms=50)
    scheduler.tick()
    time.sleep(0.15)
    assert len(scheduler.tick()) == 4


def test_a_failed_send_clears_its_flag(redis_client, layout):
    def broken(shard):
        raise ConnectionError("broker down")
    scheduler = Scheduler(redis_client, layout, DrainFlags(redis_client, 10_000), broken, 1_000)
    with pytest.raises(ConnectionError):
        scheduler.tick()
    assert all(not redis_client.exists(s.queued_key) for s in layout.shards())


def test_the_tick_creates_the_consumer_groups(redis_client, layout):
    make_scheduler(redis_client, layout, []).tick()
    for shard in layout.shards():
        assert redis_client.xinfo_groups(shard.key)[0]["name"] == shard.group.encode()


def test_periodic_jobs_are_sent_when_due(redis_client, layout):
    calls = []
    scheduler = make_scheduler(redis_client, layout, [], [Periodic("trim", 60_000, lambda: calls.append(1))])
    scheduler.tick()
    scheduler.tick()
    assert calls == [1]


def test_the_tick_thread_survives_errors_and_stops(redis_client, layout):
    calls = []

    class Flaky:
        def tick(self):
            calls.append(1)
            raise RuntimeError("Redis hiccup")

        def resign(self):
            calls.append("resigned")

    thread = TickThread(Flaky(), interval_ms=20)
    thread.start()
    time.sleep(0.2)
    thread.stop()
    assert calls.count(1) >= 3 and calls[-1] == "resigned" and not thread.is_alive()


def flags_and_sent(redis_client, layout):
    flags = DrainFlags(redis_client, ttl_ms=10_000)
    return flags, layout.shard(layout.shards()[0].kind, 0), []


def test_a_drain_that_found_the_shard_busy_leaves_the_holders_flag(redis_client, layout):
    """A duplicate drain (a redelivered message, a second worker) finds the lease held: clearing
    the flag would let the tick send a useless drain every second while the holder runs."""
    from tracker.drainer import DrainReport
    flags, shard, sent = flags_and_sent(redis_client, layout)
    assert flags.claim(shard)
    flags.after_drain(shard, DrainReport(shard.key, busy=True), sent.append)
    flags.after_drain(shard, DrainReport(shard.key, lost_lease=True, entries=5), sent.append)
    assert redis_client.exists(shard.queued_key) and sent == []
    scheduler = Scheduler(redis_client, layout, flags, sent.append, interval_ms=1_000)
    assert shard not in scheduler.tick()


def test_a_drain_that_counted_something_sends_the_next_keeping_the_flag(redis_client, layout):
    from tracker.drainer import DrainReport
    flags, shard, sent = flags_and_sent(redis_client, layout)
    assert flags.claim(shard)
    flags.after_drain(shard, DrainReport(shard.key, entries=3), sent.append)
    assert sent == [shard] and redis_client.exists(shard.queued_key)


def test_an_idle_drain_clears_its_flag_and_a_failed_send_too(redis_client, layout):
    from tracker.drainer import DrainReport
    flags, shard, _ = flags_and_sent(redis_client, layout)
    assert flags.claim(shard)
    flags.after_drain(shard, DrainReport(shard.key), lambda s: None)
    assert not redis_client.exists(shard.queued_key)

    def broken(s):
        raise ConnectionError("broker down")
    assert flags.claim(shard)
    flags.after_drain(shard, DrainReport(shard.key, entries=1), broken)
    assert not redis_client.exists(shard.queued_key)


def test_a_running_drain_sets_its_flag_again_if_it_was_removed(redis_client, layout):
    flags, shard, _ = flags_and_sent(redis_client, layout)
    flags.refresh(shard)
    assert 0 < redis_client.pttl(shard.queued_key) <= 10_000
