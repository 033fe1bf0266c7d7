"""Private backends for a benchmark: a redis-server of its own, a MariaDB schema of its own.

Nothing here touches another user's Redis database or schema: the redis-server runs on a free
port in a temporary directory and is stopped by its pid; the schema has a random name and is
dropped at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

from tracker.models import connect, create_tables

#: The MariaDB server the benchmarks create their schema on.
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/"
#: Seconds to wait for a server we started to answer.
START_TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = START_TIMEOUT_S, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if not alive():
            raise RuntimeError(f"the process meant to listen on port {port} exited")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def private_redis(appendonly: bool = True) -> Iterator[str]:
    """A redis-server of our own on a free port; yields its URL.

    It runs as production should (docker/redis.conf: append-only file fsynced before each answer,
    `appendfsync always`, and `noeviction`), so ingest figures include the cost of durability.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
            "--appendonly", "yes" if appendonly else "no", "--appendfsync", "always",
            "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", f"{workdir}/redis.log"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, alive=lambda: process.poll() is None)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return client.info("server")["redis_version"]
    finally:
        client.close()


@contextlib.contextmanager
def mysql_schema(server_url: str = DEFAULT_MYSQL_URL) -> Iterator[str]:
    """A new MariaDB schema with the tracker's tables; yields its URL, drops it afterwards."""
    base = server_url.rstrip("/")
    name = f"tracker_bench_{secrets.token_hex(4)}"
    server = connect(base + "/mysql")
    server.execute_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    url = f"{base}/{name}"
    try:
        db = connect(url)
        create_tables(db)
        db.close()
        yield url
    finally:
        server.execute_sql(f"DROP DATABASE IF EXISTS `{name}`")
        server.close()
