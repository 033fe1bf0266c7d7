"""The state of each stream shard, from Redis and the database: what `tracker status` shows."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import redis
from redis import Redis

from .aggregate import Ledger, format_id, parse_id
from .streams import Layout, Shard, redis_errors


@dataclass
class ShardStatus:
    stream: str
    length: int  # entries in the stream (counted or not, until trimmed)
    lag: int | None  # entries not yet delivered to the group (None: Redis < 7 cannot tell)
    pending: int  # delivered, not yet acknowledged
    oldest_pending_age_ms: int | None
    committed_id: str  # last entry ID whose event is in the counts
    committed_age_ms: int | None  # how old that entry is (None before the first commit)
    applied: int  # events counted from this shard in all
    dead_letters: int

    def as_dict(self) -> dict:
        return asdict(self)


def shard_status(client: Redis, ledger: Ledger, shard: Shard, now_ms: int | None = None) -> ShardStatus:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with redis_errors():
        length = client.xlen(shard.key)
        group = _group_info(client, shard)
        summary = client.xpending(shard.key, shard.group) if group else {"pending": 0, "min": None}
        dead = client.xlen(shard.dead_key)
    offset = ledger.committed(shard.key)
    row = ledger.offset_row(shard.key)
    oldest = summary.get("min")
    return ShardStatus(
        stream=shard.key,
        length=length,
        lag=group.get("lag") if group else None,
        pending=summary.get("pending", 0),
        oldest_pending_age_ms=now_ms - parse_id(oldest)[0] if oldest else None,
        committed_id=format_id(offset),
        committed_age_ms=now_ms - offset[0] if offset[0] else None,
        applied=row.applied if row else 0,
        dead_letters=dead,
    )


def _group_info(client: Redis, shard: Shard) -> dict | None:
    try:
        groups = client.xinfo_groups(shard.key)
    except redis.ResponseError:  # no such stream yet
        return None
    for group in groups:
        name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
        if name == shard.group:
            return group
    return None


def all_status(client: Redis, ledger: Ledger, layout: Layout) -> list[ShardStatus]:
    return [shard_status(client, ledger, shard) for shard in layout.shards()]
