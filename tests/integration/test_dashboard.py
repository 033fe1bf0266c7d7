"""The Dramatiq dashboard at /admin/dramatiq/ of a real `tracker serve`: a drain that failed
(the database unreachable, no retries) is listed among the failed messages, and requeued with
the dashboard's own form; a worker with the database back then runs it. Without the right
credentials, nothing under /admin answers.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser

import pytest

from tests.integration.conftest import totals
from tests.processes import free_port, tracker_env, wait_until, web, worker
from tracker.events import IMPRESSION
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = pytest.mark.integration

USER, PASSWORD = "ops", "dashboard-test-password"


@dataclass
class Page:
    status: int
    headers: Message  # case-insensitive
    body: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(port: int, path: str, form: dict | None = None, credentials=(USER, PASSWORD), cookie: str = "") -> Page:
    headers = {"Cookie": cookie} if cookie else {}
    if credentials:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=15) as response:
            return Page(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as e:
        return Page(e.code, e.headers, e.read().decode())


class Forms(HTMLParser):
    """The POST forms of a page: (action, {hidden field: value})."""

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs["action"], {}))
        elif tag == "input" and attrs.get("type") == "hidden" and self.forms:
            self.forms[-1][1][attrs["name"]] = attrs["value"]


def csrf_cookie(page: Page) -> str:
    return re.search(r"(__dd_csrf=[0-9a-f]+)", page.headers["Set-Cookie"]).group(1)


def test_a_failed_drain_is_listed_and_requeued_from_the_dashboard(tmp_path, real_redis_url, real_redis, mysql_url,
                                                                  mysql_db, env_settings):
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    for _ in range(12):
        producer.add(IMPRESSION, 5, 1_795_500_000)
    namespace = env_settings["broker_namespace"]
    failed_queue = f"{namespace}:tracker.XQ"

    # Given a drain that failed for good: the database unreachable, one retry allowed
    unreachable = f"mysql://root@127.0.0.1:{free_port()}/nowhere"
    failing = worker(tracker_env(real_redis_url, unreachable, **{**env_settings, "drain_max_retries": 1}),
                     tmp_path / "failing.log")
    try:
        wait_until(lambda: real_redis.zcard(failed_queue) > 0, 60, 0.2, "a dead-lettered drain")
    finally:
        failing.stop()
    dead_ids = {i.decode() for i in real_redis.zrange(failed_queue, 0, -1)}

    port = free_port()
    server = web(tracker_env(real_redis_url, mysql_url, **env_settings, admin_user=USER, admin_password=PASSWORD),
                 tmp_path / "web.log", port)
    try:
        # Without the right credentials, nothing
        for credentials in (None, (USER, "wrong"), ("root", PASSWORD)):
            page = fetch(port, "/admin/dramatiq/queues/tracker/failed", credentials=credentials)
            assert page.status == 401 and page.headers["WWW-Authenticate"].startswith("Basic")
            assert json.loads(page.body) == {"error": "Authentication required",
                                             "detail": "HTTP basic credentials of the tracker's admin"}
        assert fetch(port, "/admin/dramatiq/requeue-message", form={"queue": "tracker.XQ", "id": "x"},
                     credentials=(USER, "wrong")).status == 401

        # The dashboard lists the queue, and the failed drain on its "failed" tab
        home = fetch(port, "/admin/dramatiq/")
        assert home.status == 200 and "tracker" in home.body
        failed = fetch(port, "/admin/dramatiq/queues/tracker/failed")
        assert failed.status == 200
        listed = set(re.findall(r"/admin/dramatiq/queues/tracker/failed/([0-9a-f-]{36})", failed.body))
        assert listed == dead_ids
        message_id = sorted(dead_ids)[0]
        detail = fetch(port, f"/admin/dramatiq/queues/tracker/failed/{message_id}")
        assert detail.status == 200 and "<pre>drain</pre>" in detail.body
        assert "DatabaseUnavailable" in detail.body  # the traceback of its failure, among its options

        # A POST without the dashboard's CSRF token is refused by the dashboard itself
        assert fetch(port, "/admin/dramatiq/requeue-message",
                     form={"queue": "tracker.XQ", "id": message_id}).status == 403

        # When an operator presses "Requeue"
        action, fields = next((a, f) for a, f in Forms(failed.body).forms
                              if a.endswith("/requeue-message") and f.get("id") == message_id)
        assert fields["queue"] == "tracker.XQ"
        requeued = fetch(port, action, form=fields, cookie=csrf_cookie(failed))
        assert requeued.status == 302, requeued.body
        new_id = requeued.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

        # Then it has left the dead-letter queue for the work queue, its retries reset
        assert real_redis.zscore(failed_queue, message_id) is None
        copy = json.loads(real_redis.hget(f"{namespace}:tracker.msgs", new_id))
        assert copy["actor_name"] == "drain" and copy["options"]["retries"] == 0
        assert new_id in {i.decode() for i in real_redis.lrange(f"{namespace}:tracker", 0, -1)}
        assert message_id not in set(re.findall(r"failed/([0-9a-f-]{36})",
                                                fetch(port, "/admin/dramatiq/queues/tracker/failed").body))

        # and a worker with the database back runs it, and counts the events
        healthy = worker(tracker_env(real_redis_url, mysql_url, **env_settings), tmp_path / "worker.log")
        try:
            wait_until(lambda: not real_redis.hexists(f"{namespace}:tracker.msgs", new_id), 60, 0.2,
                       "the requeued message to be processed")
            wait_until(lambda: totals(mysql_db)["impressions"] == {5: 12}, 60, 0.2, "the events to be counted")
            assert real_redis.zscore(failed_queue, new_id) is None  # it succeeded
        finally:
            healthy.stop()
    finally:
        server.stop()
