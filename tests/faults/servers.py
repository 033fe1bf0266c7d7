"""Private `redis-server` and `mariadbd` instances that a fault scenario may stop, kill and restart.

Each runs on a free port with its files in the test's temporary directory, and is stopped by
its own pid (never by name): other people's servers on this machine are never touched.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pymysql
import pytest
import redis

from tests.processes import free_port, wait_until

#: Seconds a private server may take to accept connections after it was started.
START_TIMEOUT_S = 60


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        pytest.fail(f"{binary} is not installed; scripts/services.sh installs Redis and MariaDB", pytrace=False)
    return path


class PrivateServer:
    """A server process of our own; subclasses say how to start it and when it is ready."""

    name = "server"

    def __init__(self, directory: Path):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> PrivateServer:
        with open(self.directory / f"{self.name}.out", "ab") as out:
            self.process = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self.ready() or self.process.poll() is not None, START_TIMEOUT_S, 0.1,
                   f"the private {self.name} on port {self.port}")
        assert self.process.poll() is None, f"{self.name} exited: {self.output()}"
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no shutdown of any kind."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, the server's clean shutdown (SIGKILL after `timeout` s)."""
        if self._signal(signal.SIGTERM, timeout) is None:
            self.kill()

    def _signal(self, signum: int, timeout: float = 30):
        if self.process is None or self.process.poll() is not None:
            return 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        path = self.directory / f"{self.name}.out"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


class PrivateRedis(PrivateServer):
    """redis-server with an append-only file fsynced on every write (`appendfsync always`)."""

    name = "redis"

    def argv(self) -> list[str]:
        return [_require("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction",
                "--daemonize", "no", "--logfile", str(self.directory / "redis.log")]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"  # a server of its own: database 0 is ours

    def ready(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1) as client:
                return client.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):  # LOADING counts as not yet
            return False


class PrivateMariaDB(PrivateServer):
    """mariadbd on its own data directory, with no grant tables (any local user may connect)."""

    name = "mariadb"

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.datadir = directory / "data"
        if not self.datadir.exists():
            subprocess.run([_require("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}",
                            "--auth-root-authentication-method=normal", "--user=root", "--skip-test-db"],
                           check=True, capture_output=True, timeout=120)

    def argv(self) -> list[str]:
        return [_require("mariadbd"), "--no-defaults", f"--datadir={self.datadir}",
                f"--socket={self.directory / 'mariadb.sock'}", f"--port={self.port}", "--bind-address=127.0.0.1",
                "--user=root", "--skip-grant-tables", "--innodb-buffer-pool-size=32M", "--skip-name-resolve",
                f"--pid-file={self.directory / 'mariadb.pid'}", f"--log-error={self.directory / 'mariadb.err'}"]

    def url(self, schema: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{schema}"

    def ready(self) -> bool:
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def create_schema(self, schema: str) -> None:
        connection = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            connection.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4")
        finally:
            connection.close()

