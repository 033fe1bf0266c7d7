"""The bulkhead plugin: at most `limit` requests at once on its routes; the others untouched."""

import threading
from concurrent.futures import ThreadPoolExecutor

from bottle import Bottle

from tests.wsgi import call
from tracker.web.bulkhead import Bulkhead


def test_requests_beyond_the_limit_get_503_at_once_and_other_routes_are_untouched():
    app = Bottle()
    release = threading.Event()
    inside = threading.Semaphore(0)

    def slow():
        inside.release()
        release.wait(10)
        return "stats"
    app.route("/v1/stats", "GET", slow)
    app.route("/v1/stats", "OPTIONS", lambda: "preflight")
    app.route("/v1/impressions", "GET", lambda: "stored")
    app.install(Bulkhead(("/v1/stats",), limit=2))

    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(call, app, "GET", "/v1/stats") for _ in range(2)]
        assert inside.acquire(timeout=5) and inside.acquire(timeout=5)
        refused = call(app, "GET", "/v1/stats")
        assert refused.status == 503 and refused.header("Retry-After") == "5"
        assert "at most 2" in refused.json()["detail"]
        assert call(app, "GET", "/v1/impressions").body == b"stored"
        assert call(app, "OPTIONS", "/v1/stats").body == b"preflight"
        release.set()
        assert [f.result().status for f in held] == [200, 200]
    assert call(app, "GET", "/v1/stats").status == 200  # the slots came back


def test_stats_get_half_the_threads():
    assert Bulkhead.for_stats(8).limit == 4 and Bulkhead.for_stats(1).limit == 1
