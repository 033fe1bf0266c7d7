"""Intake and Producer.store: one Redis round trip per request, and scripts Redis forgot."""


import pytest
import redis

from tests.unit.test_batch import EID, make_app, post
from tests.unit.test_rate_limits import KEY


@pytest.fixture
def round_trips(monkeypatch):
    """Counts what is sent to a real Redis: one send per round trip (a pipeline sends once)."""
    sent = []
    original = redis.connection.Connection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counting)
    return sent


def batch(n, offset=0):
    return [{"type": "impression" if i % 2 else "click", "ad_id": i + 1, "event_id": f"{EID[:-4]}{i + offset:04d}"}
            for i in range(n)]


@pytest.mark.integration
@pytest.mark.parametrize("changes", [{}, {"rate_limit": 1000, "ip_hash_key": KEY}], ids=["plain", "rate-limited"])
def test_a_batch_with_event_ids_is_one_round_trip(settings, real_redis, sqlite_url, round_trips, changes):
    app = make_app(settings, real_redis, sqlite_url, **changes)
    post(app, batch(3))  # the first request may load the scripts
    round_trips.clear()
    response = post(app, batch(100, offset=100), environ_extra={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status == 200 and response.json()["accepted"] == 100
    assert len(round_trips) == 1
    assert b"SCRIPT" not in round_trips[0]


@pytest.mark.integration
def test_a_filtered_request_is_one_round_trip(settings, real_redis, sqlite_url, round_trips):
    app = make_app(settings, real_redis, sqlite_url, rate_limit=1000, ip_hash_key=KEY)
    post(app, batch(1))
    round_trips.clear()
    response = post(app, batch(5), headers={"User-Agent": "Googlebot/2.1"}, environ_extra={"REMOTE_ADDR": "192.0.2.7"})
    assert response.json()["filtered"] == 5 and len(round_trips) == 1


def test_scripts_forgotten_by_redis_are_reloaded_and_run_once(settings, fake_redis, sqlite_url):
    app = make_app(settings, fake_redis, sqlite_url, rate_limit=1000, ip_hash_key=KEY)
    first = post(app, batch(4), environ_extra={"REMOTE_ADDR": "192.0.2.7"}).json()
    fake_redis.script_flush()  # what a restarted Redis knows of our scripts: nothing
    again = post(app, batch(4) + batch(2, offset=50) + [{"type": "click", "ad_id": 9}],
                 environ_extra={"REMOTE_ADDR": "192.0.2.7"}).json()
    assert [e["status"] for e in again["events"]] == ["duplicate"] * 4 + ["stored"] * 3
    assert [e["stream_id"] for e in again["events"][:4]] == [e["stream_id"] for e in first["events"]]
    assert fake_redis.xlen("impressions_stream") + fake_redis.xlen("clicks_stream") == 4 + 3
    assert int(fake_redis.get(fake_redis.keys("tracker:rate:*")[0])) == 11  # each request counted once
