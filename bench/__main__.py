"""`python -m bench ingest|drain|freshness|footprint|all [options]` (or `./dev bench ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import report

BENCHMARKS = ("ingest", "drain", "freshness", "footprint")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmark", choices=(*BENCHMARKS, "all"))
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per ingest run (default 10)")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2,
                        help="web processes of ours and of baseline (i) (default: one per CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="waitress threads of ours and of baseline (i) (default: TRACKER_WEB_THREADS's default)")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--load-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="ingest: run only the contenders whose names start with these (e.g. ours '(i)')")
    parser.add_argument("--python-load", action="store_true", help="use the asyncio client even if wrk is there")
    parser.add_argument("--events", type=int, default=200_000, help="drain: events pre-filled (default 200,000)")
    parser.add_argument("--ads", type=int, nargs="+", default=[100, 10_000],
                        help="drain: distinct ads of each data set (default 100 10000)")
    parser.add_argument("--rate", type=int, default=1000, help="freshness: events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=30, help="freshness: seconds of steady load (default 30)")
    parser.add_argument("--mysql-url", default=None, help="MariaDB server (default mysql://root@127.0.0.1:3306/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    chosen = BENCHMARKS if args.benchmark == "all" else (args.benchmark,)
    for name in chosen:
        module = __import__(f"bench.{name}", fromlist=["run"])
        module.run(args)
    report.summary()
    return 0 if all(t.met for t in report.VERDICTS) else 1


if __name__ == "__main__":
    sys.exit(main())
