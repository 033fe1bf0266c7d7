"""Processes a benchmark starts: servers and workers in their own process group, stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .services import free_port, wait_for_port

BIN = Path(sys.executable).parent
#: Seconds a process gets to stop on SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 15


def tracker_env(redis_url: str, database_url: str, data_dir: str, **settings) -> dict[str, str]:
    """The environment of a tracker process: our backends, and TRACKER_* values; nothing inherited
    that could point it elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRACKER_") and k not in ("REDIS_URL", "REDIS_HOST", "DATABASE_URL", "DB_HOST")}
    env.update(REDIS_URL=redis_url, DATABASE_URL=database_url, TRACKER_DATA_DIR=data_dir,
               TRACKER_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    env.update({f"TRACKER_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class Group:
    """A child process in a session of its own (so its children can be found and stopped)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.argv = argv
        log = open(log_path, "ab")
        self.log_path = log_path
        self.popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def pids(self) -> list[int]:
        """The leader and every process of its group (web children, dramatiq workers)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.popen.pid:  # field 5 of stat: the process group
                found.append(int(entry))
        return sorted(found)

    def stop(self) -> None:
        if not self.alive:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def server(argv: list[str], env: dict[str, str], name: str) -> Iterator[tuple[int, Group]]:
    """Start `argv` + ["--port", P] on a free port; yield (P, the process group) once it listens."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"bench-{name}-{port}.log"
    group = Group(argv + ["--port", str(port)], env, log_path)
    try:
        try:
            wait_for_port(port, alive=lambda: group.alive)
        except RuntimeError as e:
            raise RuntimeError(f"{name} did not start: {e}\n{group.log()}") from None
        yield port, group
    finally:
        group.stop()
        if log_path.exists():
            log_path.unlink()


def tracker_serve(processes: int) -> list[str]:
    return [str(BIN / "tracker"), "serve", "--processes", str(processes)]


def baseline(app: str, processes: int = 1) -> list[str]:
    return [sys.executable, "-m", "bench.apps", app, "--processes", str(processes)]


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
