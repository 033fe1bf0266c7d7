"""The database: Peewee models and the connection built from DATABASE_URL.

The models are not bound to a database at import: every query is executed against the
database object it is given (`query.execute(db)`, `query.bind(db)`), so nothing global decides
which database a process talks to.

Tables (the canonical DDL for MariaDB is sql/schema.sql):

    ad_daily_impressions(ad_id, date, impressions)   UNIQUE(ad_id, date), kept from the PHP system
    ad_daily_clicks(ad_id, date, clicks)             likewise
    stream_offsets(stream, last_ms, last_seq, fence, applied, committed_at_ms)
        per stream shard: the last entry ID whose events are in the counts, committed in the
        same transaction as the counts; the fencing token of the newest drainer; how many
        events were applied in all; when the offset last moved.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import urllib.parse
from pathlib import Path

import peewee
from playhouse import db_url

from .errors import ConfigurationError, DatabaseUnavailable, RowRejected, StorageError
from .events import CLICK, IMPRESSION, Kind
from .urls import check_mysql_query

log = logging.getLogger(__name__)

#: Seconds to wait for a MariaDB connection before calling the database unavailable.
CONNECT_TIMEOUT_S = 5
#: Milliseconds SQLite waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000

SCHEMA_FILE = Path(__file__).resolve().parent / "sql" / "schema.sql"


class _Model(peewee.Model):
    class Meta:
        legacy_table_names = False


class AdDailyImpressions(_Model):
    ad_id = peewee.IntegerField()
    date = peewee.DateField()
    impressions = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "ad_daily_impressions"
        primary_key = peewee.CompositeKey("ad_id", "date")
        indexes = ((("date",), False),)  # as sql/schema.sql: reports and replay select by date


class AdDailyClicks(_Model):
    ad_id = peewee.IntegerField()
    date = peewee.DateField()
    clicks = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "ad_daily_clicks"
        primary_key = peewee.CompositeKey("ad_id", "date")
        indexes = ((("date",), False),)  # as sql/schema.sql: reports and replay select by date


class StreamOffset(_Model):
    stream = peewee.CharField(max_length=191, primary_key=True)
    last_ms = peewee.BigIntegerField(default=0)
    last_seq = peewee.BigIntegerField(default=0)
    fence = peewee.BigIntegerField(default=0)
    applied = peewee.BigIntegerField(default=0)
    committed_at_ms = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "stream_offsets"


MODELS = (AdDailyImpressions, AdDailyClicks, StreamOffset)
_COUNT_MODELS = {IMPRESSION.name: AdDailyImpressions, CLICK.name: AdDailyClicks}


def counts_model(kind: Kind) -> type[_Model]:
    """The daily counts model of `kind`."""
    return _COUNT_MODELS[kind.name]


def count_field(kind: Kind) -> peewee.Field:
    """The count column of `kind`'s table (`impressions` or `clicks`)."""
    return getattr(counts_model(kind), kind.plural)


def is_mysql(db: peewee.Database) -> bool:
    return isinstance(db, peewee.MySQLDatabase)


def ensure_offset_rows(db: peewee.Database, streams: list[str]) -> None:
    """Create the missing stream_offsets rows of `streams`, outside any locking transaction.

    On MariaDB, SELECT ... FOR UPDATE of a missing row locks the gap where it would go; two
    first claims of different shards in one gap then deadlock on their INSERTs (seen with 8
    shards claimed at once). With the rows in place, a locking read locks those rows only.
    """
    with database_errors(db):
        StreamOffset.insert_many([{"stream": stream} for stream in streams]).on_conflict_ignore().execute(db)


def as_date(value) -> datetime.date:
    """A DATE column's value: SQLite hands dates back as text, MariaDB as dates."""
    return value if isinstance(value, datetime.date) else datetime.date.fromisoformat(str(value))


def write_transaction(db: peewee.Database):
    """A transaction that will write. SQLite takes its write lock at BEGIN (IMMEDIATE), the
    closest it has to MariaDB's SELECT ... FOR UPDATE."""
    return db.atomic() if is_mysql(db) else db.atomic("IMMEDIATE")


def connect(url: str, timeout_s: float | None = None) -> peewee.Database:
    """A Peewee database for `url`: mysql:// (or mariadb://) through pymysql, or sqlite:///path.

    The connection itself opens lazily, per thread, on first use. With `timeout_s`, a MariaDB
    connect, read or write gives up after that many seconds (probes: /readyz, /metrics).
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("mariadb", "mysql+pymysql"):
        url = "mysql" + url[len(scheme):]
        scheme = "mysql"
    if scheme == "mysql":
        check_mysql_query(url)  # TLS and other pymysql options ride in the query (tracker/urls.py)
        timeouts = {"connect_timeout": CONNECT_TIMEOUT_S}
        if timeout_s is not None:  # a bounded probe (/readyz, /metrics): every wait bounded
            timeouts = {"connect_timeout": timeout_s, "read_timeout": timeout_s, "write_timeout": timeout_s}
        return db_url.connect(url, unquote_password=True, unquote_user=True, charset="utf8mb4", **timeouts)
    if scheme == "sqlite":
        path = urllib.parse.urlsplit(url).path
        if path not in ("", "/:memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return db_url.connect(url, pragmas={"journal_mode": "wal", "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
                                            "synchronous": "normal"})
    raise ConfigurationError(f"unsupported DATABASE_URL scheme {scheme!r}; use mysql:// or sqlite:///")


def create_tables(db: peewee.Database) -> None:
    """Create the tables if they do not exist (idempotent; never alters an existing table)."""
    with database_errors(db):
        if is_mysql(db):
            for statement in schema_statements():
                db.execute_sql(statement)
        else:
            with db.bind_ctx(MODELS):
                db.create_tables(MODELS, safe=True)


def schema_statements() -> list[str]:
    """The statements of sql/schema.sql, comments removed."""
    lines = [line for line in SCHEMA_FILE.read_text().splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@contextlib.contextmanager
def database_errors(db: peewee.Database):
    """Translate driver errors into StorageError / DatabaseUnavailable / RowRejected.

    On any operational error the thread's connection is closed, so that the next use opens a
    fresh one instead of reusing a socket the server has dropped.
    """
    try:
        yield
    except (peewee.OperationalError, peewee.InterfaceError) as e:
        _close_quietly(db)
        raise DatabaseUnavailable(f"database unavailable: {e}") from e
    except (peewee.IntegrityError, peewee.DataError) as e:  # the transaction rolled back; the connection is fine
        raise RowRejected(f"database refused the data: {e}") from e
    except peewee.DatabaseError as e:
        _close_quietly(db)
        raise StorageError(f"database error: {e}") from e


def _close_quietly(db: peewee.Database) -> None:
    try:
        db.close()
    except Exception:  # the connection is already broken; closing it is best effort
        log.debug("closing a broken database connection failed", exc_info=True)
