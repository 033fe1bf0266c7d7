"""Private redis-server instances for tests that need a Redis of their own.

A real redis-server on a free port, its files in a temporary directory, with extra
configuration lines (a tiny `maxmemory`, `replicaof ...`), stopped by pid. `pause()` and
`resume()` stall it with SIGSTOP / SIGCONT: it accepts connections but answers nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import redis

from tracker.embedded import EmbeddedRedis


class PrivateRedis(EmbeddedRedis):
    def __init__(self, directory: Path, *extra_config: str):
        super().__init__(directory)
        self.extra_config = extra_config
        self.paused = False

    def config(self) -> str:
        # no persistence: these instances live for one test
        base = super().config().replace("appendonly yes", "appendonly no")
        return base + "".join(f"{line}\n" for line in self.extra_config)

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5, **kwargs)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Kill it by pid (it holds nothing worth flushing)."""
        if self.process is None or self.process.poll() is not None:
            return
        if self.paused:
            self.resume()
        self.process.send_signal(signal.SIGKILL)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.url_file.unlink(missing_ok=True)
