"""Body limits through a real `tracker serve`: the app's JSON 413 up to four times the limit, and
waitress's own refusal, without reading the body, beyond that (README: the API's 413 row)."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.processes import free_port, tracker_env, web
from tracker.config import DEFAULT_MAX_BODY_BYTES
from tracker.server import SERVER_BODY_LIMIT_FACTOR

pytestmark = pytest.mark.integration


def post(port: int, size: int) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/v1/events", b" " * size, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        connection.close()


def test_oversized_bodies_are_refused_by_the_app_then_by_the_server(tmp_path, real_redis_url, sqlite_url):
    port = free_port()
    server = web(tracker_env(real_redis_url, sqlite_url), tmp_path / "web.log", port)
    try:
        status, content_type, body = post(port, DEFAULT_MAX_BODY_BYTES * 2)
        assert status == 413 and content_type == "application/json"
        assert json.loads(body)["error"] == "Request body too large"
        status, content_type, _ = post(port, DEFAULT_MAX_BODY_BYTES * SERVER_BODY_LIMIT_FACTOR + 1)
        assert status == 413 and not content_type.startswith("application/json")  # waitress's own
    finally:
        server.stop()
