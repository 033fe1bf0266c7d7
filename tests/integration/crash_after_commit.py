"""Run one drain whose process dies (os._exit) right after its commit, before its XACK.

    python -m tests.integration.crash_after_commit   (REDIS_URL / DATABASE_URL in the environment)
"""

import os

from tracker.config import Settings
from tracker.events import IMPRESSION
from tracker.runtime import Runtime


def main() -> None:
    runtime = Runtime(Settings.from_env())
    ledger_commit = runtime.ledger.commit

    def commit_then_die(*args, **kwargs):
        ledger_commit(*args, **kwargs)
        os._exit(137)  # as abrupt as SIGKILL: no finally, no XACK, no lease release
    runtime.ledger.commit = commit_then_die
    runtime.drainer.drain(runtime.layout.shard(IMPRESSION, 0))
    raise SystemExit("the drain did not commit anything")


if __name__ == "__main__":
    main()
