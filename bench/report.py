"""Printing: the machine, the settings, each run, the medians, ratios and PASS/FAIL."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from dataclasses import dataclass, field

#: Every verdict printed so far in this process: `all` sums them up at the end.
VERDICTS: list[Target] = []


def machine() -> str:
    """One line saying what this ran on, and how busy the machine was when it started."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({cpu}), {_memory_gib():.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load}")


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 0.0


def header(title: str, settings: dict) -> None:
    print(f"\n=== {title} ===")
    print(f"machine:  {machine()}")
    for name, value in settings.items():
        print(f"{name + ':':<10}{value}")
    sys.stdout.flush()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    """How noisy the runs were: min..max, and the spread around the median in percent."""
    if not values:
        return "-"
    m = median(values)
    pct = (max(values) - min(values)) / m * 100 if m else 0.0
    return f"{min(values):,.0f}..{max(values):,.0f} (±{pct / 2:.0f}%)"


@dataclass
class Series:
    """One measured quantity over several runs."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return median(self.values)


def table(rows: list[Series]) -> None:
    """Each series: its runs, its median and its spread."""
    width = max(len(s.name) for s in rows)
    for s in rows:
        runs = "  ".join(f"{v:,.0f}" for v in s.values)
        print(f"  {s.name:<{width}}  median {s.median:>10,.0f} {s.unit:<8} runs: {runs}   spread {spread(s.values)}")
    sys.stdout.flush()


@dataclass
class Target:
    """A figure against its target: `at_least` (or `at_most`) the bound."""

    name: str
    value: float
    bound: float
    at_least: bool = True
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.at_least else self.value <= self.bound

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        verdict = "PASS" if self.met else "FAIL"
        return f"  {verdict}  {self.name}: {self.value:,.2f}{self.unit} (target {sign} {self.bound:,.2f}{self.unit})"


def verdicts(targets: list[Target]) -> None:
    print("targets:")
    for target in targets:
        print(target.line())
        VERDICTS.append(target)
    sys.stdout.flush()


def summary() -> None:
    if not VERDICTS:
        return
    print("\n=== summary ===")
    for target in VERDICTS:
        print(target.line())
    passed = sum(t.met for t in VERDICTS)
    print(f"{passed} of {len(VERDICTS)} targets met")
