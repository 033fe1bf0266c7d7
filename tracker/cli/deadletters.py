"""`tracker dead-letters list|requeue|purge`: the entries the drain could not count.

    tracker dead-letters list [--kind impressions] [--stream S] [--limit 20] [--json] [ID ...]
    tracker dead-letters requeue (--all | ID ...) [--kind K] [--stream S] [--limit N]
    tracker dead-letters purge   (--all | ID ...) [--kind K] [--stream S] [--limit N]

IDs are the entries' IDs in their dead-letter stream (the `id` column of `list`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from ..config import Settings
from ..deadletters import DeadLetter, DeadLetters
from ..events import KINDS, kind_named
from ..runtime import Runtime
from ..streams import Shard

#: Dead letters `list` shows without --limit.
DEFAULT_LIST_LIMIT = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser("dead-letters", help="list, requeue or purge the entries that could not be counted")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("list", help="show dead letters, oldest first, with their reason")
    _selection(show, default_limit=DEFAULT_LIST_LIMIT)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_list)
    for name, func, what in (("requeue", cmd_requeue, "move dead letters back to their stream, to be counted"),
                             ("purge", cmd_purge, "delete dead letters for good")):
        action = actions.add_parser(name, help=what)
        _selection(action, default_limit=None)
        action.add_argument("--all", action="store_true", help="every selected dead letter (no IDs needed)")
        action.set_defaults(func=func)


def _selection(parser: argparse.ArgumentParser, default_limit: int | None) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="dead-letter entry IDs (default: the oldest)")
    parser.add_argument("--kind", choices=[k.plural for k in KINDS], help="impressions or clicks (default: both)")
    parser.add_argument("--stream", help="one shard's stream key, e.g. impressions_stream:1 (default: every shard)")
    parser.add_argument("--limit", type=int, default=default_limit, help="at most this many dead letters")


def _select(args: argparse.Namespace, settings: Settings) -> tuple[DeadLetters, list[Shard], list[DeadLetter]]:
    runtime = Runtime(settings)
    letters = DeadLetters(runtime.redis, runtime.layout)
    try:
        shards = letters.shards(kind_named(args.kind) if args.kind else None, args.stream)
        selected = letters.select(shards, args.ids, args.limit)
    except ValueError as e:
        raise SystemExit(f"tracker dead-letters: {e}") from None
    missing = sorted(set(args.ids) - {letter.id for letter in selected})
    if missing:
        print(f"tracker dead-letters: not found: {' '.join(missing)}", file=sys.stderr)
    return letters, shards, selected


def _require_choice(args: argparse.Namespace) -> None:
    if not args.ids and not args.all:
        raise SystemExit(f"tracker dead-letters {args.action}: name dead letters by ID, or pass --all")


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    dead, shards, selected = _select(args, settings)
    if args.json:
        print(json.dumps([letter.as_dict() for letter in selected], indent=2, ensure_ascii=False))
        return 0
    totals = dead.counts(shards)
    print("  ".join(f"{stream}: {n}" for stream, n in totals.items()))
    for letter in selected:
        when = datetime.datetime.fromtimestamp(letter.dead_at_ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{letter.stream}  {letter.id}  origin={letter.origin_id}  at={when}Z  "
              f"fields={json.dumps(letter.fields, ensure_ascii=False)}  reason={letter.reason}")
    return 0


def cmd_requeue(args: argparse.Namespace, settings: Settings) -> int:
    _require_choice(args)
    dead, _, selected = _select(args, settings)
    moved = dead.requeue(selected)
    for letter, new_id in moved:
        print(f"requeued {letter.stream} {letter.id} (origin {letter.origin_id}) as {new_id}")
    print(f"{len(moved)} requeued, {len(selected) - len(moved)} already gone", file=sys.stderr)
    return 0 if len(moved) == len(selected) and len(selected) >= len(args.ids) else 1


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    _require_choice(args)
    dead, _, selected = _select(args, settings)
    deleted = dead.purge(selected)
    print(f"{deleted} purged, {len(selected) - deleted} already gone", file=sys.stderr)
    return 0 if deleted == len(selected) and len(selected) >= len(args.ids) else 1
