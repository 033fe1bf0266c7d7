"""The package's exceptions: one base, a subtree per concern.

Driver errors (redis-py, peewee/pymysql) are translated where they enter the package, so that
callers catch `StreamUnavailable` or `DatabaseUnavailable`, never a driver's class.
"""


class TrackerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigurationError(TrackerError):
    """The settings are missing, malformed or contradict each other."""


class InvalidEvent(TrackerError):
    """An event (from a request or a stream entry) failed validation.

    `message` is safe to show to the client that sent it.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class StreamError(TrackerError):
    """Something went wrong talking to the event streams (Redis)."""


class StreamUnavailable(StreamError):
    """Redis cannot be reached, timed out, or refuses writes (OOM, read-only replica)."""


class LeaseLost(StreamError):
    """This drainer no longer holds its shard's lease; another one took over."""


class StorageError(TrackerError):
    """Something went wrong talking to the database."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or dropped the connection."""


class FencedOut(StorageError):
    """A newer drainer has taken the shard: this one's commit was refused."""


class RateLimited(TrackerError):
    """A client sent more events than its rate limit allows; nothing of this request was stored."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"rate limit exceeded; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class InvalidLink(TrackerError):
    """A click link's target URL or signature is not acceptable. `message` is safe to show."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
