"""The pages and files served to browsers: the demo page and tracker.js."""

from __future__ import annotations

import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bottle import Bottle, HTTPResponse, static_file

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
VIEWS = HERE / "views"
#: Browsers may reuse tracker.js this long (s) before asking again.
SCRIPT_MAX_AGE_S = 300


class Pages:
    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self.demo_html = (VIEWS / "demo.html").read_text()

    def register(self, app: Bottle) -> None:
        app.route("/", "GET", self.demo)
        app.route("/tracker.js", "GET", self.tracker_js)
        app.route("/static/<path:path>", "GET", self.static)

    def demo(self):
        today = datetime.datetime.now(self.tz).date().isoformat()
        html = self.demo_html.replace("<body>", f'<body data-today="{today}">', 1)
        return HTTPResponse(html, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def tracker_js(self):
        response = static_file("tracker.js", root=str(STATIC), mimetype="application/javascript; charset=utf-8")
        response.set_header("Cache-Control", f"public, max-age={SCRIPT_MAX_AGE_S}")
        response.set_header("Access-Control-Allow-Origin", "*")
        return response

    def static(self, path: str):
        return static_file(path, root=str(STATIC))
