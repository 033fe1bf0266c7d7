"""Dead letters: the stream entries the drain could not count, and what an operator does with them.

The drain moves an entry it cannot count (malformed fields, or a row the database refuses) to
its shard's dead-letter stream `{S}:dead`, with its original ID, its fields and the reason, and
acknowledges it, in one script (streams.py `_DEAD_LETTER`). Here they are listed, requeued
(moved back to their stream, to be counted like a new event) or purged.

Why `{S}:dead` rather than `impressions_stream:dead`: the `{...}` hash tag puts the dead-letter
stream in the same Redis Cluster slot as its stream S (Cluster hashes only the part inside the
braces), and a Lua script may only touch keys of one slot. That is what lets one script
acknowledge an entry and dead-letter it atomically, and another requeue it and delete its dead
letter atomically. Without a cluster the name costs nothing; `tracker dead-letters` and
`tracker status` find the streams for you.

A requeued entry gets a new ID at the end of its stream (stream IDs only grow); it is then
counted like any new event. An entry stored without `ts` was dated by its original ID; it gets
that `ts` explicitly, so that it is still counted on the day it happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from redis import Redis

from .events import Kind
from .streams import Layout, Shard, execute, queue_script, redis_errors, text

#: Dead letters read (or moved) per round trip.
CHUNK = 500

# Move one dead letter back to its stream and delete it from the dead-letter stream, atomically,
# and only if it is still there: two operators requeueing the same entry requeue it once.
# KEYS: the dead-letter stream, the stream (one slot). ARGV: the dead letter's ID, then fields.
_REQUEUE = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then
    return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
"""


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a dead-letter stream."""

    stream: str  # the stream the entry came from (and goes back to)
    id: str  # its ID in the dead-letter stream
    origin_id: str  # its ID in the original stream
    reason: str
    fields: dict[str, str]  # the original fields (bytes that are not UTF-8 as surrogate escapes)
    dead_at_ms: int

    def as_dict(self) -> dict:
        return asdict(self)

    def stream_fields(self) -> dict[bytes, bytes]:
        """The fields to store again: the originals, dated by the original ID if they had no `ts`."""
        fields = dict(self.fields)
        if "ts" not in fields:
            fields["ts"] = str(int(self.origin_id.split("-", 1)[0]) // 1000)
        return {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape") for k, v in fields.items()}


def _letter(shard: Shard, entry_id: bytes, raw: dict[bytes, bytes]) -> DeadLetter:
    try:
        fields = json.loads(raw.get(b"fields", b"{}"))
    except ValueError:
        fields = {}
    return DeadLetter(stream=shard.key, id=text(entry_id), origin_id=text(raw.get(b"origin_id", b"0-0")),
                      reason=text(raw.get(b"reason", b"")), fields=fields,
                      dead_at_ms=int(raw.get(b"dead_at_ms", b"0") or 0))


class DeadLetters:
    """The dead-letter streams of one Redis, for any kind and shard of `layout`."""

    def __init__(self, client: Redis, layout: Layout):
        self.client = client
        self.layout = layout
        self._requeue = client.register_script(_REQUEUE)

    def shards(self, kind: Kind | None = None, stream: str | None = None) -> list[Shard]:
        """The shards selected by kind and/or stream key (all of them by default)."""
        shards = [s for s in self.layout.shards(kind) if stream is None or s.key == stream]
        if stream is not None and not shards:
            known = ", ".join(s.key for s in self.layout.shards(kind))
            raise ValueError(f"no shard {stream!r}{f' of the {kind.plural}' if kind else ''}; the streams are: {known}")
        return shards

    def counts(self, shards: list[Shard]) -> dict[str, int]:
        """How many dead letters each shard's stream holds."""
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.xlen(shard.dead_key)
            return {shard.key: n for shard, n in zip(shards, pipe.execute())}

    def select(self, shards: list[Shard], ids: list[str] = (), limit: int | None = None) -> list[DeadLetter]:
        """The dead letters named by `ids`, else the oldest ones, up to `limit` in all.

        An ID found in the dead-letter streams of two shards is refused (ValueError): name the
        shard with its stream.
        """
        if ids:
            letters = self._by_ids(shards, ids)
        else:
            letters = []
            for shard in shards:
                for letter in self._scan(shard):
                    if limit is not None and len(letters) >= limit:
                        return letters
                    letters.append(letter)
        return letters[:limit] if limit is not None else letters

    def _by_ids(self, shards: list[Shard], ids: list[str]) -> list[DeadLetter]:
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for entry_id in ids:
                for shard in shards:
                    pipe.xrange(shard.dead_key, entry_id, entry_id)
            replies = iter(pipe.execute())
        letters = []
        for entry_id in ids:
            found = [_letter(shard, e_id, raw) for shard in shards for e_id, raw in next(replies)]
            if len(found) > 1:
                raise ValueError(f"{entry_id} is in several dead-letter streams "
                                 f"({', '.join(f.stream for f in found)}): choose one with its stream")
            letters += found
        return letters

    def _scan(self, shard: Shard) -> Iterator[DeadLetter]:
        """Every dead letter of `shard` present when the scan starts, oldest first.

        Entries added during the scan (a requeued entry that fails again) are left for later,
        so that requeueing everything ends.
        """
        with redis_errors():
            newest = self.client.xrevrange(shard.dead_key, count=1)
        if not newest:
            return
        last = newest[0][0]
        start: bytes | str = "-"
        while True:
            with redis_errors():
                chunk = self.client.xrange(shard.dead_key, start, last, count=CHUNK)
            for entry_id, raw in chunk:
                yield _letter(shard, entry_id, raw)
            if len(chunk) < CHUNK:
                return
            start = b"(" + chunk[-1][0]

    def requeue(self, letters: list[DeadLetter]) -> list[tuple[DeadLetter, str]]:
        """Move `letters` back to their streams; returns (letter, new entry ID) for each moved.

        A letter no longer in its dead-letter stream (requeued or purged meanwhile) is skipped.
        """
        moved = []
        for start in range(0, len(letters), CHUNK):
            chunk = letters[start:start + CHUNK]
            with redis_errors():
                pipe = self.client.pipeline(transaction=False)
                for letter in chunk:  # queue_script: one round trip, and works on a cluster pipeline
                    queue_script(pipe, self._requeue, [self._dead_key(letter), letter.stream],
                                 [letter.id, *_flatten(letter.stream_fields())])
                replies = execute(self.client, pipe)
            moved += [(letter, text(new_id)) for letter, new_id in zip(chunk, replies) if new_id]
        return moved

    def purge(self, letters: list[DeadLetter]) -> int:
        """Delete `letters` for good; returns how many were still there."""
        deleted = 0
        for start in range(0, len(letters), CHUNK):
            with redis_errors():
                pipe = self.client.pipeline(transaction=False)
                for letter in letters[start:start + CHUNK]:
                    pipe.xdel(self._dead_key(letter), letter.id)
                deleted += sum(pipe.execute())
        return deleted

    def _dead_key(self, letter: DeadLetter) -> str:
        return next(shard.dead_key for shard in self.layout.shards() if shard.key == letter.stream)


def _flatten(fields: dict[bytes, bytes]) -> list[bytes]:
    return [part for pair in fields.items() for part in pair]
