"""The load generator: wrk (Debian's package) when it is there, else a Python asyncio client.

Both keep connections alive, send to 127.0.0.1 only, stop by themselves after `duration_s`,
and report completed requests, failures (non-2xx answers, socket errors) and latency.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Ad ids the generated requests cycle through.
AD_IDS = 1000
#: Seconds wrk is allowed beyond its duration before it is killed.
GRACE_S = 30

_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""

_WRK_GET = r"""
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "%(path)s" .. (n %% %(ads)d + 1))
end
"""

_WRK_BATCH_WITH_IDS = r"""
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local n = 0
request = function()
  n = n + 1
  local items = {}
  for i = 1, %(events)d do
    items[i] = string.format('{"type":"impression","ad_id":%%d,"event_id":"%(nonce)s-%%02d-%%010d-%%03d"}', i %% 50 + 1, tid, n, i)
  end
  return wrk.format("POST", "%(path)s", {["Content-Type"] = "application/json"}, "[" .. table.concat(items, ",") .. "]")
end
"""

_WRK_POST = r"""
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "%(content_type)s"
"""


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    failures: int  # non-2xx answers, socket errors and timeouts
    p50_ms: float
    p99_ms: float
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def ensure_wrk() -> bool:
    """Install wrk from Debian's packages when missing and possible; True when it is there."""
    if wrk_available():
        return True
    if shutil.which("apt-get") and _is_root():
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return wrk_available()


def _is_root() -> bool:
    import os  # noqa: PLC0415
    return os.geteuid() == 0


@dataclass(frozen=True)
class Load:
    """What to send: GETs of `path` + a cycling ad id, or POSTs of a fixed body to `path`."""

    path: str
    connections: int = 32
    threads: int = 2
    body: bytes | None = None
    content_type: str = "application/json"
    unique_batches: int = 0  # > 0: POST batches of this many events, each with a new event_id

    def _head(self) -> bytes:
        """This load's POST request, as bytes."""
        return (f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {self.content_type}\r\n"
                f"Content-Length: {len(self.body)}\r\n\r\n").encode() + self.body

    def run(self, port: int, duration_s: float, force_python: bool = False) -> LoadResult:
        if not force_python and ensure_wrk():
            return self._wrk(port, duration_s)
        return asyncio.run(_python_load(self, port, duration_s))

    def _script(self) -> str:
        if self.unique_batches:
            nonce = secrets.token_hex(4)  # a new run never repeats an earlier run's ids
            return _WRK_BATCH_WITH_IDS % {"events": self.unique_batches, "path": self.path, "nonce": nonce} + _WRK_DONE
        if self.body is None:
            script = _WRK_GET % {"path": self.path, "ads": AD_IDS}
        else:
            script = _WRK_POST % {"body": _lua_string(self.body), "content_type": self.content_type}
        return script + _WRK_DONE

    def _wrk(self, port: int, duration_s: float) -> LoadResult:
        with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
            script = Path(tmp) / "load.lua"
            script.write_text(self._script())
            url = f"http://127.0.0.1:{port}{self.path if self.body is not None else '/'}"
            if self.unique_batches:
                url = f"http://127.0.0.1:{port}{self.path}"
            argv = ["wrk", "-t", str(self.threads), "-c", str(self.connections), "-d", f"{duration_s:g}s",
                    "--timeout", "5s", "-s", str(script), url]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + GRACE_S, check=True)
        line = next((line for line in out.stdout.splitlines() if line.startswith("WRKJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
        data = json.loads(line[len("WRKJSON "):])
        return LoadResult(requests=data["requests"] - data["status_errors"], duration_s=data["duration_us"] / 1e6,
                          failures=data["socket_errors"] + data["status_errors"] + data["timeouts"],
                          p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, tool="wrk")


def _lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03d}" for b in data) + '"'


# -- the fallback: a keep-alive HTTP/1.1 client on asyncio -----------------------------------------

async def _python_load(load: Load, port: int, duration_s: float) -> LoadResult:
    latencies: list[float] = []
    failures = [0]
    stop_at = time.monotonic() + duration_s
    started = time.monotonic()
    nonce = secrets.token_hex(4)  # event ids never repeat an earlier run's
    await asyncio.gather(*(_connection(load, port, stop_at, i, latencies, failures, nonce)
                           for i in range(load.connections)))
    elapsed = time.monotonic() - started
    latencies.sort()
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000) if latencies else (lambda q: 0)
    return LoadResult(len(latencies), elapsed, failures[0], pick(0.5), pick(0.99), "python-asyncio")


def _request_bytes(load: Load, n: int, nonce: str) -> bytes:
    if load.unique_batches:
        items = ",".join(f'{{"type":"impression","ad_id":{i % 50 + 1},"event_id":"{nonce}-py-{n:010d}-{i:03d}"}}'
                         for i in range(1, load.unique_batches + 1))
        return Load(load.path, body=f"[{items}]".encode())._head()
    if load.body is None:
        return f"GET {load.path}{n % AD_IDS + 1} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    return load._head()


async def _connection(load: Load, port: int, stop_at: float, offset: int, latencies: list, failures: list,
                      nonce: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = offset
    try:
        while time.monotonic() < stop_at:
            sent = time.monotonic()
            writer.write(_request_bytes(load, n, nonce))
            status = await _read_response(reader)
            if 200 <= status < 300:
                latencies.append(time.monotonic() - sent)
            else:
                failures[0] += 1
            n += load.connections
    except (OSError, asyncio.IncompleteReadError):
        failures[0] += 1
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status
