"""Readiness: can this process reach Redis and the database right now?

Liveness needs no check at all (a process that answers HTTP is alive); readiness runs a PING
and a `SELECT 1`, each bounded by TRACKER_HEALTH_TIMEOUT_MS, on connections of their own (a
fresh database connection per check, so an idle connection the server dropped cannot fail it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import peewee
from redis import Redis

from .errors import TrackerError
from .models import database_errors
from .streams import redis_errors

log = logging.getLogger(__name__)


@dataclass
class Check:
    name: str
    ok: bool
    ms: float  # how long the check took
    error: str | None = None


def check_redis(client: Redis) -> None:
    with redis_errors():
        client.ping()


def check_database(db: peewee.Database) -> None:
    with database_errors(db):
        try:
            db.connect(reuse_if_open=True)
            db.execute_sql("SELECT 1").fetchall()
        finally:
            db.close()


class Readiness:
    """The checks of /readyz, run one after the other."""

    def __init__(self, checks: dict[str, Callable[[], None]]):
        self.checks = checks

    def run(self) -> list[Check]:
        return [self._run(name, check) for name, check in self.checks.items()]

    @staticmethod
    def _run(name: str, check: Callable[[], None]) -> Check:
        started = time.perf_counter()
        try:
            check()
        except TrackerError as e:
            return Check(name, False, _ms_since(started), str(e))
        except Exception as e:  # an unexpected answer (wrong password...) also means "not ready"
            log.debug("readiness check %s failed", name, exc_info=True)
            return Check(name, False, _ms_since(started), f"{type(e).__name__}: {e}")
        return Check(name, True, _ms_since(started))


def readiness_report(checks: list[Check]) -> tuple[int, dict]:
    """(HTTP status, JSON body) of /readyz: 200 when every check passed, else 503 with the reasons."""
    body: dict = {"status": "ready", "checks": {c.name: _check_dict(c) for c in checks}}
    failed = [c for c in checks if not c.ok]
    if not failed:
        return 200, body
    body["status"] = "unavailable"
    body["error"] = "; ".join(f"{c.name}: {c.error}" for c in failed)
    return 503, body


def _check_dict(check: Check) -> dict:
    entry = asdict(check)
    del entry["name"]
    if entry["error"] is None:
        del entry["error"]
    return entry


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
