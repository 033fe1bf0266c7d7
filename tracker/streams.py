"""Redis Streams: the key layout, the producer, and the drain side's reads and acknowledgements.

Key layout (NS is the optional namespace prefix, empty by default; S is a shard's stream key):

    NS impressions_stream            shard 0 of the impressions: the PHP system's stream name
    NS impressions_stream:<i>        shard i > 0 (likewise NS clicks_stream[:<i>])
    {S}:lease                        drain lease of shard S: the holder's token, with a PX TTL
    {S}:queued                       set while a drain message for S is queued or running
    {S}:dead                         dead-letter stream of S: entries that cannot be counted
    {S}:trimmed-to                   highest XTRIM MINID used on S: every entry at or above it is still in S
    {S}:seen:<event_id>              dedupe: the entry ID an event id was stored as, PX window
    {S}:last-drain                   hash: when and how the last drain of S ended (tracker.drainlog)
    NS tracker:tick-leader           the scheduler's leader lock (one tick sender)

Consumer groups: `impression_group` / `click_group` on every shard of the kind, created at
ID 0 and idempotently (BUSYGROUP is success). Every drainer reads as the consumer named
`DRAIN_CONSUMER`, so a shard's pending list is one ordered run of IDs.

A shard's auxiliary keys are `{S}:...`: the hash tag `{S}` makes Redis Cluster hash them like
the bare key S, so a shard's stream, lease and dead letters share one slot and a script may
touch them together. That is why the dead letters of `impressions_stream` are in
`{impressions_stream}:dead`, not `impressions_stream:dead` (another slot): one script
acknowledges an entry and dead-letters it, another requeues it (tracker/deadletters.py).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from dataclasses import dataclass

import redis
from redis import Redis
from redis.client import Pipeline
from redis.cluster import ClusterPipeline, RedisCluster

from .config import DEFAULT_DEDUPE_WINDOW_MS
from .errors import LeaseLost, StreamUnavailable
from .events import KINDS, Kind, encode_fields

log = logging.getLogger(__name__)

#: The one consumer name every drainer uses (see the module docstring).
DRAIN_CONSUMER = "tracker-drain"


@contextlib.contextmanager
def redis_errors():
    """Translate redis-py's connection-level failures into StreamUnavailable.

    Covers an unreachable or timed-out server, a server still loading its data, a server
    that refuses writes (out of memory under `noeviction`, or a read-only replica), and a
    Redis Cluster that is down or does not cover a slot.
    """
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError) as e:
        raise StreamUnavailable(f"Redis unavailable: {e}") from e
    except redis.exceptions.OutOfMemoryError as e:  # redis-py drops the "OOM" code from the message
        raise StreamUnavailable(f"Redis refuses writes: out of memory: {e}") from e
    except (redis.exceptions.ClusterError, redis.exceptions.SlotNotCoveredError) as e:
        raise StreamUnavailable(f"Redis Cluster unavailable: {e}") from e
    except redis.ResponseError as e:
        # A pipeline prefixes its errors: "Command # 1 (XADD ...) of pipeline caused error: OOM ..."
        message = str(e).rpartition(" of pipeline caused error: ")[2]
        if message.startswith(("OOM", "MISCONF", "READONLY", "LOADING", "MASTERDOWN")):
            raise StreamUnavailable(f"Redis refuses writes: {e}") from e
        raise


#: Script bodies by SHA, to reload a script Redis has forgotten.
_SCRIPT_BODIES: dict[str, str] = {}


def queue_script(pipe, script, keys: list, args: list) -> None:
    """Queue `script` (from register_script) on `pipe` as a plain EVALSHA.

    A pipeline holding Script objects makes redis-py send SCRIPT EXISTS first: a second round
    trip every time. Queued by SHA, a pipeline run by `execute` is one round trip. A Redis
    Cluster pipeline gets the script's body instead (EVAL), so no node can lack it.
    """
    if isinstance(pipe, ClusterPipeline):  # its evalsha()/eval() refuse; the EVAL command routes by key
        pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        return
    _SCRIPT_BODIES[script.sha] = script.script
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def execute(client: Redis, pipe, raise_on_error: bool = True) -> list:
    """Run `pipe` (non-transactional) in one round trip; its replies in order, or its first error
    (with `raise_on_error` false, the errors come back in place of their replies).

    If Redis has forgotten a script (a restart, SCRIPT FLUSH), the commands that failed with
    NOSCRIPT did not run at all: the script is loaded and just those commands run again.
    """
    commands = list(pipe.command_stack)
    replies = pipe.execute(raise_on_error=False)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
    if missing:
        for i, reply in zip(missing, _rerun(client, [commands[i] for i in missing])):
            replies[i] = reply
    for reply in replies if raise_on_error else ():
        if isinstance(reply, Exception):
            raise reply
    return replies


def translated(error: Exception) -> Exception:
    """The exception `redis_errors` would raise for `error` (a reply error of a pipeline)."""
    try:
        with redis_errors():
            raise error
    except Exception as e:  # noqa: BLE001 - that is the point: hand back what it became
        return e


def _rerun(client: Redis, commands: list) -> list:
    pipe = client.pipeline(transaction=False)
    shas = list(dict.fromkeys(args[1] for args, _ in commands))  # EVALSHA <sha> ...
    for sha in shas:
        pipe.script_load(_SCRIPT_BODIES[sha])
    for args, options in commands:
        pipe.execute_command(*args, **options)
    return pipe.execute(raise_on_error=False)[len(shas):]


@dataclass(frozen=True)
class Shard:
    """One stream shard of one kind of event."""

    kind: Kind
    index: int
    key: str

    def aux(self, suffix: str) -> str:
        """An auxiliary key of this shard, hash-tagged into the shard's cluster slot."""
        return f"{{{self.key}}}:{suffix}"

    @property
    def group(self) -> str:
        return self.kind.group

    @property
    def lease_key(self) -> str:
        return self.aux("lease")

    @property
    def queued_key(self) -> str:
        return self.aux("queued")

    @property
    def dead_key(self) -> str:
        return self.aux("dead")

    @property
    def trimmed_to_key(self) -> str:
        return self.aux("trimmed-to")

    @property
    def last_drain_key(self) -> str:
        return self.aux("last-drain")


class Layout:
    """Where each kind's shards live, and which shard an event goes to."""

    def __init__(self, namespace: str = "", shards: int = 1):
        self.namespace = namespace
        self.shard_count = shards
        self._shards = {
            kind.name: tuple(Shard(kind, i, self._stream_key(kind, i)) for i in range(shards)) for kind in KINDS
        }

    def _stream_key(self, kind: Kind, index: int) -> str:
        base = f"{self.namespace}{kind.stream}"
        return base if index == 0 else f"{base}:{index}"

    def shards(self, kind: Kind | None = None) -> tuple[Shard, ...]:
        """The shards of `kind`, or of every kind."""
        if kind is not None:
            return self._shards[kind.name]
        return tuple(s for k in KINDS for s in self._shards[k.name])

    def shard(self, kind: Kind, index: int) -> Shard:
        return self._shards[kind.name][index]

    def shard_for(self, kind: Kind, ad_id: int) -> Shard:
        """The shard an ad's events go to: by ad id, so one ad's counts come from one drainer."""
        return self._shards[kind.name][ad_id % self.shard_count]

    @property
    def tick_leader_key(self) -> str:
        return f"{self.namespace}tracker:tick-leader"


def ensure_groups(client: Redis, layout: Layout) -> None:
    """Create every shard's stream and consumer group if missing. Safe to call any time."""
    for shard in layout.shards():
        ensure_group(client, shard)


def ensure_group(client: Redis, shard: Shard) -> None:
    with redis_errors():
        try:
            client.xgroup_create(shard.key, shard.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise


@dataclass(frozen=True)
class NewEvent:
    """An event to store. With an `event_id`, a second event with the same id (a client's retry)
    within the dedupe window is recognised and not stored again."""

    kind: Kind
    ad_id: int
    ts: int
    event_id: str | None = None


@dataclass(frozen=True)
class Stored:
    """Where an event went: its entry ID, and whether it was new (False: a duplicate of `entry_id`)."""

    entry_id: str
    new: bool = True


# Store an event once per event id: the dedupe key remembers the entry ID for the window. One
# script keyed to the shard's slot, so the check and the XADD are atomic (and cluster-safe).
_ADD_ONCE = """
local seen = redis.call('GET', KEYS[2])
if seen then return {0, seen} end
local id = redis.call('XADD', KEYS[1], '*', 'ad_id', ARGV[1], 'ts', ARGV[2])
redis.call('SET', KEYS[2], id, 'PX', ARGV[3])
return {1, id}
"""



class Producer:
    """Stores accepted events (fields `ad_id` and `ts`), any number in one round trip."""

    def __init__(self, client: Redis, layout: Layout, dedupe_window_ms: int = DEFAULT_DEDUPE_WINDOW_MS):
        self.client = client
        self.layout = layout
        self.dedupe_window_ms = dedupe_window_ms
        self._add_once = client.register_script(_ADD_ONCE)

    def add(self, kind: Kind, ad_id: int, ts: int, pipeline=None) -> str | None:
        """XADD one event; returns its entry ID (None when queued on `pipeline`)."""
        shard = self.layout.shard_for(kind, ad_id)
        target = pipeline if pipeline is not None else self.client
        with redis_errors():
            entry_id = target.xadd(shard.key, encode_fields(ad_id, ts))
        if pipeline is not None:
            return None
        return text(entry_id)

    def store(self, events: list[NewEvent]) -> list[Stored]:
        """Store `events` in one pipelined round trip; results in the same order.

        Not a transaction: if Redis fails midway some events may be stored, and the caller
        answers an error for all of them. Clients retry with the same event ids, and the ids
        make those retries harmless.
        """
        if not events:
            return []
        if len(events) == 1 and events[0].event_id is None:
            # One plain XADD needs no pipeline (whose setup costs a lone request ~7 us, in-process)
            return [Stored(self.add(events[0].kind, events[0].ad_id, events[0].ts))]
        outcomes = self.store_each(events)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome
        return outcomes

    def store_each(self, events: list[NewEvent]) -> list[Stored | Exception]:
        """As `store`, but each event gets its own outcome: where it was stored, or the error
        Redis answered for it (out of memory midway through the pipeline, say). Raises only
        when the round trip itself fails (no event can be said stored or not)."""
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            self.queue(pipe, events)
            replies = execute(self.client, pipe, raise_on_error=False)
        return [translated(reply) if isinstance(reply, Exception) else _stored(reply) for reply in replies]

    def queue(self, pipe, events: list[NewEvent]) -> None:
        """Queue the commands storing `events` on `pipe`, one reply each (run it with `execute`, read
        the replies with `results`)."""
        for event in events:
            self._queue(pipe, event)

    @staticmethod
    def results(replies: list) -> list[Stored]:
        """What `queue`'s commands answered, as Stored values in the same order."""
        return [_stored(reply) for reply in replies]

    def _queue(self, pipe, event: NewEvent) -> None:
        shard = self.layout.shard_for(event.kind, event.ad_id)
        if event.event_id is None:
            pipe.xadd(shard.key, encode_fields(event.ad_id, event.ts))
        else:
            queue_script(pipe, self._add_once, [shard.key, shard.aux(f"seen:{event.event_id}")],
                         [event.ad_id, event.ts, self.dedupe_window_ms])


def text(value) -> str:
    """A Redis reply (bytes, or already str) as str; bytes that are not UTF-8 survive as escapes."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _stored(reply) -> Stored:
    if isinstance(reply, list):  # from the dedupe script: [1 new | 0 seen, entry id]
        return Stored(text(reply[1]), new=bool(reply[0]))
    return Stored(text(reply))


# A shard's entries are read only while holding its lease: a drainer whose lease expired can
# never read again, so everything read under lease N was read before anything read under lease
# N+1. The read is an optimistic transaction: WATCH the lease key, check that it holds our
# token, then MULTI / PEXPIRE (renew) / XREADGROUP / EXEC. Another drainer can only take the
# lease by writing its key, which makes EXEC refuse to run the read. (A Lua script doing the
# same costs Redis about 3 us more per entry read, converting the reply to Lua tables and
# back: more than the read itself.)

# Move entries to the dead-letter stream and acknowledge them, atomically and only while holding
# the lease. An entry is moved only if XACK removed it from the pending list, so a retry (or a
# stale drainer) can never dead-letter the same entry twice.
_DEAD_LETTER = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
    return redis.error_reply('LEASELOST drain lease of ' .. KEYS[1] .. ' is held by another drainer')
end
local moved = 0
for i = 3, #ARGV, 4 do
    if redis.call('XACK', KEYS[1], ARGV[2], ARGV[i]) == 1 then
        redis.call('XADD', KEYS[3], '*', 'origin_id', ARGV[i], 'stream', KEYS[1],
                   'reason', ARGV[i + 1], 'fields', ARGV[i + 2], 'dead_at_ms', ARGV[i + 3])
        moved = moved + 1
    end
end
return moved
"""


#: A stream entry as the gated read returns it: [entry ID, flat list of fields and values or None].
RawEntry = list


@dataclass(frozen=True)
class Entry:
    """A stream entry: its ID and fields (None when the entry was trimmed away)."""

    id: bytes
    fields: dict[bytes, bytes] | None

    @classmethod
    def of(cls, raw: RawEntry) -> Entry:
        return cls(raw[0], _as_dict(raw[1]))


def encode_dead_fields(fields: dict[bytes, bytes] | None) -> str:
    """The original fields as JSON; bytes that are not UTF-8 survive as surrogate escapes."""
    decoded = {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape") for k, v in (fields or {}).items()}
    return json.dumps(decoded)


class ShardReader:
    """The drain side of one Redis: lease-gated reads, acknowledgements and dead letters."""

    def __init__(self, client: Redis):
        self.client = client
        self._dead_letter = client.register_script(_DEAD_LETTER)
        # The reads' replies stay as Redis sent them (no conversion of each entry into a dict).
        callbacks = getattr(client, "response_callbacks", redis.Redis.RESPONSE_CALLBACKS)  # a cluster's nodes: Redis's
        self._raw_replies = copy.copy(callbacks)
        self._raw_replies.pop("XREADGROUP", None)

    def _transaction(self, shard: Shard) -> Pipeline:
        """A WATCH-capable pipeline to the server holding `shard`'s slot.

        A Redis Cluster client has no such pipeline (its own refuses WATCH), but every key the
        read touches lives in the shard's slot, so a transaction on that slot's node is the same
        transaction (a slot moved meanwhile makes it fail with MOVED, and the drain is retried).
        """
        pool = self.client.connection_pool if not isinstance(self.client, RedisCluster) else \
            self.client.get_node_from_key(shard.key).redis_connection.connection_pool
        return Pipeline(pool, self._raw_replies, True, None)

    def read(self, shard: Shard, token: str, ttl_ms: int, count: int, after: bytes | str) -> list[RawEntry]:
        """Read up to `count` entries: pending ones after ID `after`, or new ones when it is '>'.

        Entries come as read, `[id, [field, value, ...]]` (the fields None when the entry was
        trimmed): a drain reads hundreds of thousands a second, and builds objects only for the
        few that need them (see `Entry.of`). Raises LeaseLost when `token` no longer holds the
        shard's lease.
        """
        try:
            with redis_errors(), self._transaction(shard) as pipe:
                pipe.watch(shard.lease_key)
                if text(pipe.get(shard.lease_key)) != token:
                    raise LeaseLost(f"drain lease of {shard.key} is held by another drainer")
                pipe.multi()
                pipe.pexpire(shard.lease_key, ttl_ms)
                pipe.execute_command("XREADGROUP", "GROUP", shard.group, DRAIN_CONSUMER, "COUNT", count,
                                     "STREAMS", shard.key, after)
                reply = pipe.execute()[1]
        except redis.WatchError as e:
            raise LeaseLost(f"drain lease of {shard.key} was taken while reading") from e
        except redis.ResponseError as e:
            if "NOGROUP" in str(e):  # the stream was lost (an unpersisted Redis restarted)
                ensure_group(self.client, shard)
                return []
            raise
        return reply[0][1] if reply else []

    def wait(self, shard: Shard, timeout_ms: int) -> None:
        """Block up to `timeout_ms` for a new entry in the shard (a wake-up; reads nothing)."""
        if timeout_ms > 0:
            with redis_errors():
                self.client.xread({shard.key: "$"}, count=1, block=timeout_ms)

    def ack(self, shard: Shard, ids: list[bytes]) -> None:
        if ids:
            with redis_errors():
                self.client.xack(shard.key, shard.group, *ids)

    def dead_letter(self, shard: Shard, token: str, entries: list[tuple[Entry, str]], now_ms: int) -> int:
        """Move (entry, reason) pairs to the shard's dead-letter stream; returns how many moved."""
        args: list = [token, shard.group]
        for entry, reason in entries:
            args += [entry.id, reason, encode_dead_fields(entry.fields), now_ms]
        try:
            with redis_errors():
                moved = self._dead_letter(keys=[shard.key, shard.lease_key, shard.dead_key], args=args)
        except redis.ResponseError as e:
            if str(e).startswith("LEASELOST"):
                raise LeaseLost(str(e)) from e
            raise
        log.warning("moved %d entries of %s to %s (%s)", moved, shard.key, shard.dead_key, entries[0][1])
        return moved


def _as_dict(fields) -> dict[bytes, bytes] | None:
    """XREADGROUP's fields (a flat list from a script, a dict from redis-py) as a dict."""
    if not fields:
        return None
    if isinstance(fields, dict):
        return fields
    return dict(zip(fields[::2], fields[1::2]))
