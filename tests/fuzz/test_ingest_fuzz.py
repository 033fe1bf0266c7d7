"""Bad input at every ingest route (tests/fuzz/routes.py): in-process through the WSGI app, and a
smaller run against a real `tracker serve`. See checks.py for what must hold for every request."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.load import HttpClient
from tests.fuzz.checks import Answer, StreamWatch, check_answer, check_stored
from tests.fuzz.probes import CLICK_SECRET, Probe, probes
from tests.fuzz.routes import INGEST_ROUTES, Route
from tests.processes import free_port, tracker_env, web
from tests.unit.test_web import make_runtime
from tests.wsgi import call
from tracker.events import KINDS
from tracker.streams import Layout, ensure_groups
from tracker.web import create_app

#: Examples per route: in-process (fakeredis), and through a real server (real Redis).
IN_PROCESS_EXAMPLES = 300
REAL_SERVER_EXAMPLES = 40
STREAMS = [kind.stream for kind in KINDS]
RELAXED = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.fixture
def fuzzed_app(settings, fake_redis, sqlite_url):
    ensure_groups(fake_redis, Layout())
    return create_app(make_runtime(settings.replace(click_secret=CLICK_SECRET), fake_redis, sqlite_url))


def ask_app(app, probe: Probe) -> Answer:
    response = call(app, probe.method, probe.path, probe.body, probe.content_type, probe.headers)
    return Answer(response.status, response.headers, response.body)


@pytest.mark.parametrize("route", INGEST_ROUTES, ids=lambda r: r.path)
def test_bad_input_in_process(route: Route, fuzzed_app, fake_redis):
    watch = StreamWatch(fake_redis, STREAMS)
    statuses: Counter = Counter()

    @settings(max_examples=IN_PROCESS_EXAMPLES, **RELAXED)
    @given(probe=probes(route))
    def one(probe: Probe):
        answer = ask_app(fuzzed_app, probe)
        check_answer(route, probe, answer)
        check_stored(route, probe, answer, watch.new())
        statuses[answer.status] += 1
    one()
    print(route.path, dict(sorted(statuses.items())), sum(len(v) for v in watch.stored.values()))
    # the probes reach both sides: stored events, and refusals of several kinds
    assert statuses[route.success] > 0 and len([s for s in statuses if s >= 400]) >= 2


@pytest.mark.integration
def test_bad_input_through_a_real_server(tmp_path, real_redis_url, real_redis, sqlite_url):
    """Through waitress and the real Redis: the same checks, on fewer examples per route."""
    ensure_groups(real_redis, Layout())
    port = free_port()
    server = web(tracker_env(real_redis_url, sqlite_url, click_secret=CLICK_SECRET), tmp_path / "web.log", port)
    client = HttpClient(port)
    watch = StreamWatch(real_redis, STREAMS)
    asked = 0

    @settings(max_examples=REAL_SERVER_EXAMPLES * len(INGEST_ROUTES), **RELAXED)
    @given(data=st.data())
    def one(data):
        nonlocal asked
        route = data.draw(st.sampled_from(INGEST_ROUTES))
        probe = data.draw(probes(route))
        headers = {**probe.headers, **({"Content-Type": probe.content_type} if probe.content_type else {})}
        status, answer_headers, body = client.request(probe.method, probe.path, probe.body or None, headers)
        answer = Answer(status, answer_headers, body)
        check_answer(route, probe, answer)
        check_stored(route, probe, answer, watch.new())
        asked += 1
    try:
        one()
    finally:
        client.close()
        server.stop()
    assert asked >= REAL_SERVER_EXAMPLES * len(INGEST_ROUTES) // 2
    assert "Traceback" not in (tmp_path / "web.log").read_text()
