"""What a DATABASE_URL may carry in its query: pymysql's connection options, TLS among them.

    mysql://tracker:PASSWORD@db.internal:3306/ad_tracking?ssl_ca=/etc/tracker/ca.pem&ssl_verify_cert=true

Peewee's URL parser (playhouse.db_url) hands every query parameter to pymysql as a keyword,
with `true`/`false` and digits converted. For TLS that is `ssl_ca`, `ssl_cert`, `ssl_key`
(client certificate), `ssl_verify_cert`, `ssl_verify_identity` (the server's name must match
its certificate), `ssl_disabled`. A misspelt option or a missing certificate file would only
fail at the first connection, as an error that says little; it is refused here at start.
"""

from __future__ import annotations

import inspect
import urllib.parse
from pathlib import Path

import pymysql

from .errors import ConfigurationError

#: Options whose value is a file the connection reads.
FILE_OPTIONS = ("ssl_ca", "ssl_cert", "ssl_key", "read_default_file")
#: Options the URL's own parts set (user, host...): not accepted again in the query.
URL_PARTS = ("self", "user", "password", "passwd", "host", "port", "database", "db")


def mysql_options() -> frozenset[str]:
    """The keyword options of pymysql's connection."""
    names = inspect.signature(pymysql.connections.Connection.__init__).parameters
    return frozenset(names) - set(URL_PARTS)


def check_mysql_query(url: str) -> None:
    """Refuse query options pymysql does not know, and certificate files that do not exist."""
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    known = mysql_options()
    for name, value in query:
        if name not in known:
            raise ConfigurationError(f"DATABASE_URL: unknown option {name!r} (known: {', '.join(sorted(known))})")
        if name in FILE_OPTIONS and not Path(value).is_file():
            raise ConfigurationError(f"DATABASE_URL: {name}={value} is not a readable file")
