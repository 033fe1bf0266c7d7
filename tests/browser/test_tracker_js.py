"""tracker.js in headless Chromium, against a scripted endpoint: viewability, batching, retries.

The pages and POST /v1/events are served by a small HTTP server in the test, whose answers
each test scripts, so that it sees exactly what the browser sent and when. The real server,
Redis and MariaDB are exercised end to end in test_demo.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.browser.conftest import wait_for

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parents[2] / "tracker" / "web" / "static" / "tracker.js"
# Headless Chromium's tab is always visible: tests switch what the page sees and tell it.
TAB_VISIBILITY = """window.setTabHidden = function (hidden) {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden ? "hidden" : "visible"});
    document.dispatchEvent(new Event("visibilitychange"));
};"""
STYLE = "<style>body{margin:0} .ad{display:block;width:300px;height:200px;background:#39f} .gap{height:1500px}</style>"


class Endpoint:
    """Serves test pages and tracker.js; answers POST /v1/events as scripted and records each batch."""

    def __init__(self, page):
        self.page = page
        self.requests: list[dict] = []  # {"transport", "content_type", "events", "status"}
        self.answers: list[tuple[int, dict]] = []  # answered in order, then 200
        self.pages: dict[str, str] = {}
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/tracker.js":
                    self.reply(200, "application/javascript", SCRIPT.read_bytes())
                elif self.path in endpoint.pages:
                    self.reply(200, "text/html", endpoint.pages[self.path].encode())
                else:
                    self.reply(404, "text/plain", b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = endpoint.answers.pop(0) if endpoint.answers else (200, {"stored": 1})
                # A beacon is a no-cors request; fetch from the page is a cors one.
                transport = "beacon" if self.headers.get("Sec-Fetch-Mode") == "no-cors" else "fetch"
                endpoint.requests.append({"path": self.path, "transport": transport, "events": json.loads(body),
                                          "content_type": self.headers.get("Content-Type"), "status": status})
                self.reply(status, "application/json", json.dumps(answer).encode())

        return Handler

    def open(self, body: str, attributes: str = "", path: str = "/page") -> None:
        self.pages[path] = (f'<!doctype html><html><head><link rel="icon" href="data:,">{STYLE}</head><body>{body}'
                            f'<script src="/tracker.js" {attributes}></script></body></html>')
        self.page.goto(self.origin + path)

    def events(self, kind: str | None = None) -> list[dict]:
        """Every event received, in order (a retried event appears once per send)."""
        return [e for r in self.requests for e in r["events"] if kind is None or e["type"] == kind]

    def ads(self, kind: str) -> list[int]:
        return [e["ad_id"] for e in self.events(kind)]


@pytest.fixture
def endpoint(page):
    endpoint = Endpoint(page)
    yield endpoint
    endpoint.close()


def impressions_once_settled(page, endpoint, message: str, settle_ms: int = 1500) -> list[int]:
    """The ads counted, once the first impression arrived and `settle_ms` passed without more."""
    wait_for(page, lambda: endpoint.events(), message=message)
    page.wait_for_timeout(settle_ms)
    return endpoint.ads("impression")


def scroll_to(page, selector: str) -> None:
    page.eval_on_selector(selector, "el => el.scrollIntoView({block: 'center'})")


def test_an_ad_in_view_for_a_second_is_counted_once(page, endpoint):
    endpoint.open('<div class="ad" data-ad-id="1"></div><div class="gap"></div>')
    # 2.5 s more in view: still one impression on this page view
    assert impressions_once_settled(page, endpoint, "the impression", settle_ms=2500) == [1]
    event = endpoint.events()[0]
    assert set(event) == {"type", "ad_id", "event_id"}
    assert len(event["event_id"]) == 36 and event["event_id"][14] == "4"  # crypto.randomUUID's version 4
    assert endpoint.requests[0]["transport"] == "fetch" and endpoint.requests[0]["content_type"] == "text/plain"
    assert page.console_log.problems() == []


def test_an_ad_scrolled_past_in_less_than_a_second_is_not_counted(page, endpoint):
    endpoint.open('<div class="gap"></div><div class="ad" id="fast" data-ad-id="2"></div>'
                  '<div class="gap"></div><div class="ad" id="slow" data-ad-id="3"></div><div class="gap"></div>')
    scroll_to(page, "#fast")
    page.wait_for_timeout(250)
    scroll_to(page, "#slow")
    assert impressions_once_settled(page, endpoint, "the impression of the ad that stayed") == [3]


def test_less_than_half_in_view_is_not_viewable(page, endpoint):
    # The viewport is 720 px high: ad 4 (200 px) shows 80 px (40 %), ad 5 shows 120 px (60 %).
    endpoint.open('<div style="height:640px"></div><div class="ad" data-ad-id="4" style="display:inline-block"></div>'
                  '<div class="ad" data-ad-id="5" style="display:inline-block;position:relative;top:-40px"></div>'
                  '<div class="gap"></div>')
    assert impressions_once_settled(page, endpoint, "the impression of the ad 60 % in view") == [5]


def test_no_impression_while_the_tab_is_hidden(page, endpoint):
    page.add_init_script(TAB_VISIBILITY)
    endpoint.open('<div class="ad" data-ad-id="6"></div>')
    page.evaluate("setTabHidden(true)")
    page.wait_for_timeout(2000)
    assert endpoint.events() == []
    page.evaluate("setTabHidden(false)")  # back: one more continuous second is needed
    wait_for(page, lambda: endpoint.events(), message="the impression after the tab came back")
    assert endpoint.ads("impression") == [6]


def test_hiding_the_tab_sends_what_is_queued_as_a_beacon(page, endpoint):
    page.add_init_script(TAB_VISIBILITY)
    endpoint.open('<div class="ad" data-ad-id="7"></div>', 'data-flush-ms="60000"')
    page.wait_for_timeout(1500)  # the impression is queued; its flush timer is a minute away
    assert endpoint.events() == []
    page.evaluate("setTabHidden(true)")
    wait_for(page, lambda: endpoint.events(), message="the beacon")
    assert endpoint.ads("impression") == [7]
    assert endpoint.requests[0]["transport"] == "beacon" and endpoint.requests[0]["content_type"] == "text/plain"


def test_events_close_together_go_in_one_batch(page, endpoint):
    endpoint.open("".join(f'<div class="ad" data-ad-id="{i}" style="height:100px"></div>' for i in (11, 12, 13)))
    wait_for(page, lambda: len(endpoint.events()) == 3, message="three impressions")
    assert len(endpoint.requests) == 1 and sorted(endpoint.ads("impression")) == [11, 12, 13]


def test_max_batch_splits_a_burst(page, endpoint):
    endpoint.open("".join(f'<div class="ad" data-ad-id="{i}" style="height:60px"></div>' for i in range(21, 26)),
                  'data-max-batch="2" data-flush-ms="50"')
    wait_for(page, lambda: len(endpoint.events()) == 5, message="five impressions")
    assert max(len(r["events"]) for r in endpoint.requests) <= 2


def test_a_failed_batch_is_sent_again_with_the_same_event_ids(page, endpoint):
    endpoint.answers = [(503, {"error": "Event store unavailable, retry later"}), (500, {"error": "x"})]
    endpoint.open('<div class="ad" data-ad-id="31"></div>')
    wait_for(page, lambda: any(r["status"] == 200 for r in endpoint.requests), 30, "a successful retry")
    page.wait_for_timeout(1500)
    assert [r["status"] for r in endpoint.requests] == [503, 500, 200]  # nothing more once stored
    ids = [[e["event_id"] for e in r["events"]] for r in endpoint.requests]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 1


def test_refused_items_are_dropped_and_the_rest_sent_again(page, endpoint):
    # All-or-nothing validation: the server names the bad items; nothing of the batch was stored.
    endpoint.answers = [(400, {"error": "Invalid events", "items": [{"index": 1, "field": "ad_id", "error": "bad"}]})]
    endpoint.open('<div class="ad" data-ad-id="41" style="height:100px"></div>'
                  '<div class="ad" data-ad-id="42" style="height:100px"></div>')
    wait_for(page, lambda: len(endpoint.requests) == 2, message="the resend")
    first, second = endpoint.requests
    assert len(first["events"]) == 2 and second["events"] == [first["events"][0]]
    wait_for(page, lambda: any("refused 1 event(s) with 400" in p for p in page.console_log.problems()),
             message="the warning")


def test_a_batch_too_large_for_the_server_is_split(page, endpoint):
    endpoint.answers = [(400, {"error": "Too many events", "detail": "at most 2 events per request, got 3"})]
    endpoint.open("".join(f'<div class="ad" data-ad-id="{i}" style="height:100px"></div>' for i in (43, 44, 45)))
    wait_for(page, lambda: len(endpoint.events()) == 6, message="the batch sent again in halves")
    first, *halves = endpoint.requests  # the halves travel concurrently, in either order
    assert len(first["events"]) == 3 and sorted(len(r["events"]) for r in halves) == [1, 2]
    resent = sorted((e for r in halves for e in r["events"]), key=lambda e: e["event_id"])
    assert resent == sorted(first["events"], key=lambda e: e["event_id"])  # the same events, same ids


def test_clicks_are_sent_at_once_but_signed_redirect_links_are_left_to_the_server(page, endpoint):
    endpoint.open('<div class="ad" data-ad-id="51"><span id="inner">buy</span></div>'
                  f'<div class="ad" data-ad-id="52"><a id="signed" href="{endpoint.origin}/c?ad_id=52&url=x&sig=abc">go</a></div>',
                  'data-flush-ms="60000"')
    page.click("#inner")
    wait_for(page, lambda: endpoint.events("click"), message="the click")
    page.eval_on_selector("#signed", "a => a.addEventListener('click', e => e.preventDefault())")
    page.click("#signed")
    page.wait_for_timeout(1000)
    assert endpoint.ads("click") == [51]


def test_ads_added_later_are_measured_and_removed_ones_forgotten(page, endpoint):
    endpoint.open('<div id="slot"></div>', 'data-dwell-ms="1000"')
    page.evaluate("""document.getElementById('slot').innerHTML =
        '<div class="ad" data-ad-id="61"></div><div class="ad" id="gone" data-ad-id="62"></div>'""")
    page.wait_for_timeout(300)
    page.evaluate("document.getElementById('gone').remove()")
    assert impressions_once_settled(page, endpoint, "the impression of the inserted ad") == [61]


def test_an_ad_id_given_later_is_measured(page, endpoint):
    endpoint.open('<div class="ad" id="slot" data-ad-id=""></div>')
    page.wait_for_timeout(1300)
    assert endpoint.events() == []
    page.evaluate("document.getElementById('slot').setAttribute('data-ad-id', '63')")
    wait_for(page, lambda: endpoint.events(), message="the impression once the slot has an ad")
    assert endpoint.ads("impression") == [63]


def test_an_ad_inside_a_scrolling_box_counts_only_when_scrolled_into_view(page, endpoint):
    endpoint.open('<div id="box" style="height:150px;overflow:auto"><div style="height:600px"></div>'
                  '<div class="ad" data-ad-id="71" style="height:100px"></div></div>')
    page.wait_for_timeout(1500)
    assert endpoint.events() == []  # in the window's viewport, but clipped by its box
    page.evaluate("document.getElementById('box').scrollTop = 560")
    wait_for(page, lambda: endpoint.events(), message="the impression after scrolling the box")
    assert endpoint.ads("impression") == [71]


def test_invalid_ids_and_invisible_ads_are_not_counted(page, endpoint):
    endpoint.open('<div class="ad" data-ad-id="84" style="height:40px"></div>'
                  '<div class="ad" data-ad-id="12x" style="height:80px"></div>'
                  '<div class="ad" data-ad-id="99999999999" style="height:80px"></div>'
                  '<div class="ad" data-ad-id="81" style="height:80px;opacity:0"></div>'
                  '<div class="ad" data-ad-id="82" style="height:80px;visibility:hidden"></div>'
                  '<div class="ad" data-ad-id="83" style="height:0"></div>')
    assert impressions_once_settled(page, endpoint, "the impression of the only viewable ad", settle_ms=2500) == [84]


def test_script_options(page, endpoint):
    endpoint.open('<div class="ad" data-ad-id="91" style="height:100px"></div>'
                  '<div class="promo" data-ad-id="92" style="height:100px"></div>',
                  f'data-endpoint="{endpoint.origin}/v1/events" data-threshold="1" data-dwell-ms="200" data-selector=".promo"')
    config = page.evaluate("adTracker.config")
    assert config == {"endpoint": f"{endpoint.origin}/v1/events", "threshold": 1, "dwellMs": 200, "flushMs": 1000,
                      "maxBatch": 50, "transport": "auto", "selector": ".promo"}
    assert impressions_once_settled(page, endpoint, "the impression", settle_ms=1000) == [92]


def test_leaving_the_page_sends_the_queue_as_a_beacon(page, endpoint):
    endpoint.pages["/next"] = "<p>next page</p>"
    endpoint.open('<div class="ad" data-ad-id="93"></div>', 'data-flush-ms="60000"')
    page.wait_for_timeout(1500)  # the impression is queued, its flush timer far away
    assert endpoint.events() == []
    page.goto(f"{endpoint.origin}/next")
    wait_for(page, lambda: endpoint.events(), message="the beacon sent on pagehide")
    assert endpoint.ads("impression") == [93] and endpoint.requests[0]["transport"] == "beacon"


def test_without_random_uuid_ids_come_from_get_random_values(page, endpoint):
    page.add_init_script("delete Crypto.prototype.randomUUID")  # as on a page not served over https
    endpoint.open('<div class="ad" data-ad-id="94" style="height:100px"></div>'
                  '<div class="ad" data-ad-id="95" style="height:100px"></div>')
    wait_for(page, lambda: len(endpoint.events()) == 2, message="the impressions")
    ids = [e["event_id"] for e in endpoint.events()]
    assert len(set(ids)) == 2
    for event_id in ids:
        assert len(event_id) == 36 and event_id[14] == "4" and event_id[19] in "89ab"
