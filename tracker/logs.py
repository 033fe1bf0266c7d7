"""Logging: one configuration for `tracker serve`, `tracker run` and `dramatiq tracker.tasks`.

Two formats, chosen by TRACKER_LOG_FORMAT:

    text   2026-11-24 10:15:02,113 INFO tracker.tasks: drained impressions_stream entries=1000 ...
    json   {"ts": "2026-11-24T10:15:02.113Z", "level": "INFO", "logger": "tracker.tasks",
            "message": "drained impressions_stream", "pid": 4711, "entries": 1000, ...}

Values a log call passes in `extra=` (stream, counts, durations) are fields of their own in
both formats, not only words in the message, so a log pipeline can filter and sum them.

Dramatiq's CLI configures logging in each worker process before it imports `tracker.tasks`;
that import calls `configure_logging` again, which replaces the root handlers (keeping the
stream they write to: in a Dramatiq worker, stderr is the pipe to the main process).
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import time

from .config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def extra_fields(record: logging.LogRecord) -> dict:
    """The fields a log call added with `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """The classic one-line format, with extra fields appended as key=value."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{head} {pairs}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, pid, thread, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
                  .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(settings: Settings, stream=None) -> None:
    """Send every log record of this process to `stream` (stderr) in the configured format.

    Replaces the root logger's plain stream handlers (a previous call's, basicConfig's,
    Dramatiq's), so calling it again never duplicates lines; other handlers (files, a test
    runner's capture) stay. The level is TRACKER_LOG_LEVEL; Dramatiq's `-v` has no effect on
    the tracker's processes.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter(settings.log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())


class Throttled:
    """Logs a recurring message at most once per `interval_s`, with the count of those skipped.

    For the request path: when Redis is down every request fails the same way, and one line a
    few seconds (with `suppressed=N`) says as much as thousands would.
    """

    def __init__(self, logger: logging.Logger, interval_s: float, clock=time.monotonic):
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._next = 0.0
        self._suppressed = 0

    def log(self, level: int, msg: str, *args, extra: dict | None = None) -> None:
        with self._lock:
            now = self.clock()
            if now < self._next:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._next = self._suppressed, 0, now + self.interval_s
        self.logger.log(level, msg, *args, extra={**(extra or {}), "suppressed": suppressed})

    def warning(self, msg: str, *args, extra: dict | None = None) -> None:
        self.log(logging.WARNING, msg, *args, extra=extra)
