"""The pages and files served to browsers: the demo page and tracker.js."""

from __future__ import annotations

import html
from pathlib import Path

from bottle import Bottle, HTTPResponse, static_file

from ..signing import ClickSigner

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
VIEWS = HERE / "views"
#: Browsers may reuse tracker.js this long (s) before asking again.
SCRIPT_MAX_AGE_S = 300
#: The demo's ad whose link goes through the signed click redirect /c.
DEMO_SIGNED_AD = 5


class Pages:
    def __init__(self, signer: ClickSigner | None = None, link_base: str = ""):
        self.signer = signer
        self.link_base = link_base
        self.demo_html = (VIEWS / "demo.html").read_text()

    def register(self, app: Bottle) -> None:
        app.route("/", "GET", self.demo)
        app.route("/tracker.js", "GET", self.tracker_js)
        app.route("/static/<path:path>", "GET", self.static)

    def demo(self):
        url, note = self.demo_click_link()
        page = self.demo_html.replace("{{CLICK_URL}}", html.escape(url)).replace("{{CLICK_NOTE}}", html.escape(note))
        return HTTPResponse(page, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def demo_click_link(self) -> tuple[str, str]:
        """The signed /c link of the demo's ad 5, back to this page; without a secret, a plain link."""
        if self.signer is None:
            return (f"#ad-{DEMO_SIGNED_AD}",
                    "signing is off here (no TRACKER_CLICK_SECRET), so tracker.js counts this click")
        base = self.link_base
        return (self.signer.link(base, DEMO_SIGNED_AD, f"{base}/?via=click#ad-{DEMO_SIGNED_AD}"),
                "the tracker's redirect /c counts the click, then sends you back here")

    def tracker_js(self):
        response = static_file("tracker.js", root=str(STATIC), mimetype="application/javascript; charset=utf-8")
        response.set_header("Cache-Control", f"public, max-age={SCRIPT_MAX_AGE_S}")
        response.set_header("Access-Control-Allow-Origin", "*")
        return response

    def static(self, path: str):
        return static_file(path, root=str(STATIC))
