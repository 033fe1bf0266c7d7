"""`tracker run` on a machine with nothing configured: embedded Redis, SQLite, one process."""

from __future__ import annotations

import html
import json
import re
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.processes import TRACKER, Process, free_port, http_ok, wait_until

pytestmark = pytest.mark.integration


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def impressions_of(port: int, ad_id: int) -> int:
    report = get_json(f"http://127.0.0.1:{port}/v1/stats?ad_id={ad_id}")
    return report["totals"]["impressions"]


def start_run(tmp_path, port: int) -> Process:
    env = {"PATH": "/usr/bin:/bin", "TRACKER_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    process = Process([TRACKER, "run", "--port", str(port)], env, tmp_path / "run.log").start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/") or not process.alive, 30, message="tracker run")
    assert process.alive, process.log()
    return process


def test_run_serves_the_demo_and_counts_an_event_within_seconds(tmp_path):
    port = free_port()
    process = start_run(tmp_path, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            assert b"data-ad-id" in page.read()
        sent = time.monotonic()
        answer = get_json(f"http://127.0.0.1:{port}/track_impression.php?ad_id=7")
        assert answer["status"] == "success"
        wait_until(lambda: impressions_of(port, 7) == 1, 10, 0.05, "the impression in /v1/stats")
        print(f"visible in /v1/stats {time.monotonic() - sent:.2f}s after the 200")
    finally:
        process.signal(signal.SIGINT)  # Ctrl-C
        code = process.popen.wait(30)
    log = process.log()
    assert code == 0, log
    assert "Traceback" not in log, log
    data = tmp_path / "data"
    assert (data / "tracker.db").exists()
    assert list((data / "redis").glob("appendonly*")), "the embedded Redis keeps an append-only file"
    assert not (data / "redis" / "url").exists(), "the embedded Redis was stopped"


def test_run_keeps_events_and_counts_across_restarts(tmp_path):
    port = free_port()
    process = start_run(tmp_path, port)
    try:
        for _ in range(3):
            get_json(f"http://127.0.0.1:{port}/v1/impressions?ad_id=5")
        wait_until(lambda: impressions_of(port, 5) == 3, 10, 0.05, "three impressions")
    finally:
        process.signal(signal.SIGTERM)
        assert process.popen.wait(30) == 0, process.log()
    port = free_port()
    process = start_run(tmp_path, port)
    try:
        assert impressions_of(port, 5) == 3
        get_json(f"http://127.0.0.1:{port}/v1/impressions?ad_id=5")
        wait_until(lambda: impressions_of(port, 5) == 4, 10, 0.05, "the fourth impression")
    finally:
        process.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_run_signs_the_demo_click_link_with_a_secret_of_its_data_directory(tmp_path):
    port = free_port()
    process = start_run(tmp_path, port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            link = html.unescape(re.search(rb'id="ad-5" href="([^"]*)"', page.read())[1].decode())
        assert link.startswith(f"http://127.0.0.1:{port}/c?ad_id=5&")
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(link, timeout=5)
        assert redirect.value.code == 302
        assert redirect.value.headers["Location"] == f"http://127.0.0.1:{port}/?via=click#ad-5"
        wait_until(lambda: get_json(f"http://127.0.0.1:{port}/v1/stats?ad_id=5")["totals"]["clicks"] == 1, 10,
                   0.05, "the click of the redirect")
    finally:
        process.stop()
    secret = tmp_path / "data" / "click-secret"
    assert secret.exists() and oct(secret.stat().st_mode & 0o777) == "0o600"
