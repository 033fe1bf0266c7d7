"""The ingest baselines, served by the same code that serves the tracker (tracker/server.py).

    python -m bench.apps bare  --port P [--processes N]   (i) a Bottle route returning a dict
    python -m bench.apps naive --port P                    (ii) one XADD per request, one process

Both read the same TRACKER_* settings as `tracker serve` (waitress threads, limits), so the
baseline (i) is served exactly as the tracker is; (ii) is one waitress process by definition.
"""

from __future__ import annotations

import argparse
import time

import bottle
import redis

from tracker.config import Settings
from tracker.server import create_server, serve_forever, serve_processes


def bare_app() -> bottle.Bottle:
    app = bottle.Bottle()

    @app.route("/track_impression.php")
    def track():
        return {"status": "success"}

    return app


def naive_app(redis_url: str) -> bottle.Bottle:
    app = bottle.Bottle()
    client = redis.Redis.from_url(redis_url)

    @app.route("/track_impression.php")
    def track():
        ad_id = int(bottle.request.query.get("ad_id"))
        ts = int(time.time())
        stream_id = client.xadd("impressions_stream", {"ad_id": ad_id, "ts": ts})
        return {"status": "success", "ad_id": ad_id, "stream_id": stream_id.decode(), "ts": ts}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apps")
    parser.add_argument("app", choices=("bare", "naive"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    settings = Settings.from_env().replace(port=args.port)
    redis_url = settings.redis_url or "redis://127.0.0.1:6379/0"
    make_app = bare_app if args.app == "bare" else (lambda: naive_app(redis_url))
    if args.processes > 1:
        serve_processes(make_app, settings, args.processes)
    else:
        serve_forever(create_server(make_app(), settings))


if __name__ == "__main__":
    main()
