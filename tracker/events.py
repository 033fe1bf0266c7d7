"""Events: the two kinds we count, and the validation shared by ingest and drain.

An event is stored in its stream as the fields `ad_id` and `ts` (Unix seconds), exactly as the
PHP system stored them. Validation is strict on both sides: ingest refuses what it cannot
count, and the drain refuses (and dead-letters) what somebody else wrote badly, so that a
single bad entry can never fail the batch of good ones around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidEvent

#: The largest ad id: the tables' `ad_id` is a signed 32-bit INT in the schema we inherit.
MAX_AD_ID = 2**31 - 1
#: Timestamps outside [2000-01-01, 2106-02-07) are not plausible event times.
MIN_TS = 946_684_800
MAX_TS = 2**32 - 1
#: The PHP system's message for a bad id; its clients may compare against it.
INVALID_AD_ID = "Invalid or missing ad_id parameter"
#: What a valid ad id is, for the `detail` of a refusal.
AD_ID_DETAIL = f"ad_id must be a whole number from 1 to {MAX_AD_ID}"

_DIGITS = re.compile(rb"[0-9]{1,10}")


@dataclass(frozen=True)
class Kind:
    """One kind of event, with the names the PHP system gave its stream, group and table."""

    name: str  # "impression"
    plural: str  # "impressions": the table's count column, and the API's word
    stream: str  # base stream key; shard 0 is exactly this name
    group: str  # consumer group
    table: str  # daily counts table


IMPRESSION = Kind("impression", "impressions", "impressions_stream", "impression_group", "ad_daily_impressions")
CLICK = Kind("click", "clicks", "clicks_stream", "click_group", "ad_daily_clicks")
KINDS: tuple[Kind, ...] = (IMPRESSION, CLICK)


def kind_named(name: str) -> Kind:
    """The kind called `name` ("impression" or "impressions", likewise for clicks)."""
    for kind in KINDS:
        if name in (kind.name, kind.plural):
            return kind
    raise ValueError(f"unknown event kind {name!r}; expected one of {[k.plural for k in KINDS]}")


def parse_ad_id(raw) -> int:
    """Return `raw` as an ad id, or raise InvalidEvent.

    Accepts an int (not a bool) or a string of decimal digits, with a value in 1..MAX_AD_ID.
    Refuses what PHP's `(int)` cast would have mangled: "12x", "1e3", " 7", "-3", 1.5, and
    ids too large for the table.
    """
    return _whole_number(raw, 1, MAX_AD_ID, INVALID_AD_ID, "ad_id")


def parse_ts(raw) -> int:
    """Return `raw` as a Unix time in seconds within [MIN_TS, MAX_TS], or raise InvalidEvent."""
    return _whole_number(raw, MIN_TS, MAX_TS, "ts must be a Unix time in seconds", "ts")


def _whole_number(raw, low: int, high: int, message: str, field: str) -> int:
    """`raw` (an int that is not a bool, or ASCII decimal digits) as an int in [low, high]."""
    if isinstance(raw, str):
        raw = raw.encode("ascii", "replace")
    if isinstance(raw, bytes):
        if not _DIGITS.fullmatch(raw):
            raise InvalidEvent(message, field=field)
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise InvalidEvent(message, field=field)
    return raw


def encode_fields(ad_id: int, ts: int) -> dict[str, str]:
    """The stream entry's fields for an event."""
    return {"ad_id": str(ad_id), "ts": str(ts)}


def decode_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[int, int]:
    """Return (ad_id, ts) of a stream entry, or raise InvalidEvent with the reason.

    An entry without `ts` is dated by its ID (milliseconds since the epoch), which is when
    Redis accepted it.
    """
    ad_id = parse_ad_id(fields.get(b"ad_id"))
    raw_ts = fields.get(b"ts")
    if raw_ts is None:
        return ad_id, int(entry_id.split(b"-", 1)[0]) // 1000
    return ad_id, parse_ts(raw_ts)


#: A client's event id: 16 to 64 letters, digits, '-' or '_' (a UUID, a ULID, base64url bytes).
#: Long enough to be unique across clients (ids are remembered per stream shard, not per
#: client), and free of spaces, braces and other characters that have a meaning in Redis keys.
EVENT_ID_MIN_CHARS = 16
EVENT_ID_MAX_CHARS = 64
_EVENT_ID = re.compile(rf"[A-Za-z0-9_-]{{{EVENT_ID_MIN_CHARS},{EVENT_ID_MAX_CHARS}}}")
INVALID_EVENT_ID = (f"event_id must be {EVENT_ID_MIN_CHARS} to {EVENT_ID_MAX_CHARS} letters, digits, '-' or '_' "
                    "(e.g. crypto.randomUUID())")


def parse_event_id(raw) -> str | None:
    """Return a client's optional event id (None when absent), or raise InvalidEvent."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _EVENT_ID.fullmatch(raw):
        raise InvalidEvent(INVALID_EVENT_ID, field="event_id")
    return raw


def parse_client_ts(raw, now: int, max_skew_ms: int) -> int:
    """A client-supplied event time (Unix seconds) within `max_skew_ms` of `now`, or InvalidEvent.

    A bounded skew keeps a client's clock (or a forged time) from moving counts to other days.
    """
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > MAX_TS:
        raise InvalidEvent("ts must be a Unix time in seconds (this looks like milliseconds)", field="ts")
    ts = parse_ts(raw)
    if abs(ts - now) * 1000 > max_skew_ms:
        raise InvalidEvent(f"ts is {ts - now:+d} s from the server's clock; at most {max_skew_ms // 1000} s either "
                           "way is accepted", field="ts")
    return ts
