"""The figures every fault scenario prints and asserts: sent, acknowledged, counted, lost, duplicated.

- sent: events the producer tried to store (each once, however often it retried);
- acknowledged: events the producer was told were stored (an HTTP 200, or Redis's XADD reply);
- counted: the sum of the daily counts in MariaDB;
- lost: acknowledged - counted where positive, per (kind, ad);
- duplicated: counted - acknowledged where positive, per (kind, ad).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import peewee

from tests.integration.conftest import totals

#: Lines printed by the scenarios of this session, repeated in pytest's terminal summary.
REPORTED: list[str] = []


class Ledger:
    """What a producer sent and was told was stored, per (kind plural, ad_id). Thread-safe."""

    def __init__(self):
        self.sent = 0
        self.acknowledged: Counter = Counter()
        self._lock = threading.Lock()

    def attempt(self, n: int = 1) -> None:
        with self._lock:
            self.sent += n

    def ack(self, kind: str, ad_id: int, n: int = 1) -> None:
        with self._lock:
            self.acknowledged[kind, ad_id] += n

    def ack_all(self, keys) -> None:
        with self._lock:
            self.acknowledged.update(keys)


def counted(db: peewee.Database) -> Counter:
    """The daily counts in the database, summed per (kind plural, ad_id)."""
    return Counter({(kind, ad_id): n for kind, ads in totals(db).items() for ad_id, n in ads.items()})


@dataclass(frozen=True)
class Figures:
    sent: int
    acknowledged: int
    counted: int
    lost: int
    duplicated: int

    @classmethod
    def of(cls, ledger: Ledger, counts: Counter) -> Figures:
        acked = ledger.acknowledged
        keys = acked.keys() | counts.keys()
        return cls(
            sent=ledger.sent,
            acknowledged=sum(acked.values()),
            counted=sum(counts.values()),
            lost=sum(max(0, acked[k] - counts[k]) for k in keys),
            duplicated=sum(max(0, counts[k] - acked[k]) for k in keys),
        )

    def line(self) -> str:
        return (f"sent={self.sent} acknowledged={self.acknowledged} counted={self.counted} "
                f"lost={self.lost} duplicated={self.duplicated}")


def wait_counted(ledger: Ledger, db: peewee.Database, timeout: float) -> None:
    """Wait until the database holds exactly what was acknowledged, or `timeout` s have passed
    (then the figures that `report` prints say what differs)."""
    deadline = time.monotonic() + timeout
    while counted(db) != +ledger.acknowledged and time.monotonic() < deadline:
        time.sleep(0.5)


def report(scenario: str, figures: Figures, details: str = "") -> None:
    """Print the scenario's line, keep it for the session summary, and assert nothing was lost or doubled."""
    line = f"{scenario}: {figures.line()}" + (f" ({details})" if details else "")
    print(line)
    REPORTED.append(line)
    assert figures.lost == 0 and figures.duplicated == 0, line
