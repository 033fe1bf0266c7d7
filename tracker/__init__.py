"""Ad impression and click tracking: Redis Streams in, exactly-once daily counts out."""

__version__ = "0.1.0"
