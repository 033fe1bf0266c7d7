"""`tracker serve --processes N`: several processes share the port; a dead one is replaced."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

from tests.processes import TRACKER, Process, free_port, http_ok, tracker_env, wait_until

pytestmark = pytest.mark.integration


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_processes_share_the_port_and_are_supervised(tmp_path, real_redis_url, mysql_url):
    port = free_port()
    env = tracker_env(real_redis_url, mysql_url)
    server = Process([TRACKER, "serve", "--port", str(port), "--processes", "3"], env, tmp_path / "web.log").start()
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/tracker.js") or not server.alive, 20, message="serve")
        assert len(wait_until(lambda: len(children_of(server.popen.pid)) == 3 and children_of(server.popen.pid),
                              10, message="three web processes")) == 3
        for i in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/impressions?ad_id={i + 1}", timeout=5) as r:
                assert json.loads(r.read())["status"] == "success"
        victim = children_of(server.popen.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(children_of(server.popen.pid)) == 3 and victim not in children_of(server.popen.pid),
                   10, message="the killed web process to be replaced")
        assert http_ok(f"http://127.0.0.1:{port}/tracker.js")
    finally:
        code = server.stop()
    assert code == 0, server.log()
