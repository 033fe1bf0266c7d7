"""Redis refusals reach the package as StreamUnavailable, as redis-py really raises them.

The errors are built by redis-py's own reply parser from the server's error lines, so a
change in how redis-py names or words them (4.6 raises OutOfMemoryError without the "OOM"
prefix) shows up here rather than as a 500 in production.
"""

import pytest
import redis
from redis.connection import BaseParser

from tracker.errors import StreamUnavailable
from tracker.streams import redis_errors


@pytest.mark.parametrize("reply", [
    "OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY You can't write against a read only replica.",
    "LOADING Redis is loading the dataset in memory",
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
])
def test_a_server_refusing_writes_is_unavailable(reply):
    error = BaseParser().parse_error(reply)
    with pytest.raises(StreamUnavailable):
        with redis_errors():
            raise error


def test_other_response_errors_are_left_alone():
    with pytest.raises(redis.ResponseError):
        with redis_errors():
            raise BaseParser().parse_error("WRONGTYPE Operation against a key holding the wrong kind of value")
