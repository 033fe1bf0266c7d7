"""Real processes for integration tests: `tracker serve`, `dramatiq tracker.tasks`, `tracker run`.

Each runs in its own process group (so SIGKILL takes its children too), logs to a file under
the test's temporary directory, and is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
TRACKER = str(BIN / "tracker")
DRAMATIQ = str(BIN / "dramatiq")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def tracker_env(redis_url: str, database_url: str, **settings) -> dict[str, str]:
    """An environment for tracker processes: the test's Redis and database, and TRACKER_* values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_") or k.startswith("TRACKER_TEST")}
    env.update(REDIS_URL=redis_url, DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    env.update({f"TRACKER_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class Process:
    """A child process in its own group, logging to `log_path`."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group: no cleanup of any kind runs."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` s; returns the exit code."""
        if self.popen is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def worker(env: dict[str, str], log_path: Path, processes: int = 1, threads: int = 4) -> Process:
    """The production worker command, `dramatiq tracker.tasks`."""
    return Process([DRAMATIQ, "tracker.tasks", "--processes", str(processes), "--threads", str(threads)],
                   env, log_path).start()


def web(env: dict[str, str], log_path: Path, port: int) -> Process:
    process = Process([TRACKER, "serve", "--port", str(port)], env, log_path).start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/tracker.js") or not process.alive, 20,
               message="the web server")
    assert process.alive, process.log()
    return process


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
