"""`tracker replay`: recompute some days' counts from the streams and replace them."""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from typing import TextIO

from ..config import Settings
from ..events import kind_named
from ..replay import Replayer, ReplayResult
from ..runtime import Runtime

#: Least time between two redraws of the progress bar (seconds).
PROGRESS_REDRAW_S = 0.2
PROGRESS_WIDTH = 30


def register(subparsers) -> None:
    replay = subparsers.add_parser(
        "replay", help="recompute the counts of some days from the events in the streams, replacing them",
        description="Recompute the counts of the days FROM..TO (reporting timezone) from the events still in "
                    "the streams and replace them, in one transaction. Drains may keep running. Refuses when "
                    "a stream no longer holds the whole range.")
    replay.add_argument("--kind", required=True, choices=("impressions", "clicks"), help="which counts")
    replay.add_argument("--from", dest="start", required=True, metavar="DATE", type=datetime.date.fromisoformat,
                        help="first day (YYYY-MM-DD)")
    replay.add_argument("--to", dest="end", required=True, metavar="DATE", type=datetime.date.fromisoformat,
                        help="last day (YYYY-MM-DD), included")
    replay.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
    replay.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar on stderr (default: when stderr is a terminal)")
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    runtime = Runtime(settings)
    replayer = Replayer(runtime.redis, runtime.database, runtime.layout, settings)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    bar = ProgressBar(sys.stderr) if show else None
    try:
        result = replayer.replay(kind_named(args.kind), args.start, args.end, dry_run=args.dry_run,
                                 progress=bar.update if bar else lambda fraction, entries: None)
    except ValueError as e:
        raise SystemExit(f"tracker replay: {e}") from None
    finally:
        if bar:
            bar.close()
        runtime.close()
    print(format_result(result))
    return 0


def format_result(result: ReplayResult) -> str:
    """Per day: the count before, the recomputed count, and how many ads' rows differ."""
    kind = result.kind.plural
    lines = [f"{kind} {result.start} .. {result.end}: {result.entries} stream entries read from "
             f"{result.shards} shard(s)",
             f"{'date':<12}{'before':>12}{'after':>12}{'change':>10}{'ads changed':>13}"]
    for day in result.days:
        lines.append(f"{day.date.isoformat():<12}{day.old:>12}{day.new:>12}{day.new - day.old:>+10}"
                     f"{day.rows_changed:>13}")
    lines.append(f"{'total':<12}{result.old_total:>12}{result.new_total:>12}"
                 f"{result.new_total - result.old_total:>+10}")
    lines.append("replaced." if result.written else "dry run: nothing was written.")
    return "\n".join(lines)


class ProgressBar:
    """A one-line bar redrawn in place (carriage return), at most every PROGRESS_REDRAW_S."""

    def __init__(self, out: TextIO, clock=time.monotonic):
        self.out = out
        self.clock = clock
        self._last = float("-inf")
        self._drawn = False

    def update(self, fraction: float, entries: int) -> None:
        now = self.clock()
        if fraction < 1.0 and now - self._last < PROGRESS_REDRAW_S:
            return
        self._last = now
        filled = int(fraction * PROGRESS_WIDTH)
        self.out.write(f"\r[{'#' * filled}{'.' * (PROGRESS_WIDTH - filled)}] {fraction:4.0%}  {entries} entries")
        self.out.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.out.write("\n")
            self.out.flush()
