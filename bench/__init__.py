"""Benchmarks: ingest, drain, freshness and footprint, each against baselines run beside it.

`./dev bench ingest|drain|freshness|footprint|all` (see `python -m bench --help`). Every
benchmark runs on a private redis-server and a private MariaDB schema, is bounded in time,
repeats its measurements (baselines interleaved with ours, so that the machine's noise hits
both alike), and prints each run, the medians, the ratios and PASS/FAIL against the targets.
"""
