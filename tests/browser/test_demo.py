"""The demo page in headless Chromium against the real system: `tracker serve`, `dramatiq
tracker.tasks`, Redis and MariaDB. What a visitor sees is what the database counts, exactly.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.request
from collections import Counter

import pytest

from tests.browser.conftest import ARTIFACTS, wait_for
from tests.integration.conftest import env_settings, mysql_db, totals  # noqa: F401  (fixtures)
from tests.processes import free_port, tracker_env, web, worker
from tracker.models import AdDailyClicks, AdDailyImpressions

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CLICK_SECRET = "browser-test-click-secret-0123456789"
# Every event tracker.js queues, on every page view, reported to the test as it happens.
REPORT_EVENTS = """
for (const type of ["impression", "click"]) {
  document.addEventListener("tracker:" + type, (e) => window.reportTrackerEvent(type, e.detail.adId));
}"""


@pytest.fixture
def site(tmp_path, real_redis_url, mysql_url, mysql_db, env_settings):  # noqa: F811
    """The base URL of a running tracker: web server and worker on the test's Redis and MariaDB."""
    env = tracker_env(real_redis_url, mysql_url, click_secret=CLICK_SECRET, **env_settings)
    port = free_port()
    server = web(env, tmp_path / "web.log", port)
    drainer = worker(env, tmp_path / "worker.log")
    yield f"http://127.0.0.1:{port}"
    drainer.stop()
    server.stop()


@pytest.fixture
def queued(page) -> list[tuple[str, int]]:
    """(type, ad id) of each event tracker.js queued, across page views."""
    events: list[tuple[str, int]] = []
    page.expose_function("reportTrackerEvent", lambda kind, ad_id: events.append((kind, ad_id)))
    page.add_init_script(REPORT_EVENTS)
    return events


def ads_queued(events, kind: str) -> list[int]:
    return [ad for k, ad in events if k == kind]


def scroll_to(page, selector: str) -> None:
    page.eval_on_selector(selector, "el => el.scrollIntoView({block: 'center'})")


def test_the_demo_counts_what_the_visitor_saw_and_clicked_exactly_once(site, page, queued, mysql_db, real_redis,
                                                                      tmp_path):
    page.goto(site + "/")
    # Above the fold: ads 1 and 2, and ad 6, inserted by a script after the page loaded.
    wait_for(page, lambda: {1, 2, 6} <= set(ads_queued(queued, "impression")), 30, "the ads above the fold")
    assert 7 not in ads_queued(queued, "impression"), "ad 7 is clipped by its scrolling box"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo-top.png"))
    page.eval_on_selector("#scroller", "box => { box.scrollTop = box.scrollHeight; }")
    wait_for(page, lambda: 7 in ads_queued(queued, "impression"), 30, "ad 7, scrolled into view in its box")

    scroll_to(page, "#ad-3")  # less than a second in view
    page.wait_for_timeout(300)
    scroll_to(page, "#ad-4")  # more than a second in view (ad 5 shares its row)
    page.wait_for_timeout(1500)
    wait_for(page, lambda: 4 in ads_queued(queued, "impression"), 30, "ad 4, in view for over a second")
    page.click("#ad-4")
    wait_for(page, lambda: ads_queued(queued, "click") == [4], 30, "the click on ad 4")

    expected = {"impressions": {1: 1, 2: 1, 4: 1, 5: 1, 6: 1, 7: 1}, "clicks": {4: 1}}
    assert Counter(ads_queued(queued, "impression")) == expected["impressions"]
    wait_for(page, lambda: totals(mysql_db) == expected, 60, f"the database to hold {expected}")
    assert totals(mysql_db)["impressions"][4] == 1 and 3 not in totals(mysql_db)["impressions"]
    assert totals(mysql_db)["clicks"] == {4: 1}
    wait_for(page, lambda: page.inner_text("#count-4").split()[1:3] == ["1", "1"], 10, "the live counts")
    page.screenshot(path=str(ARTIFACTS / "demo.png"))

    # The signed link of ad 5 goes through /c, which counts the click; tracker.js leaves it alone.
    # It leads back to the demo: a new page view, whose impressions count again.
    page.click("#ad-5")
    page.wait_for_url(re.compile(r"/\?via=click#ad-5$"))
    assert page.is_visible("#came-back")
    page.wait_for_timeout(2500)  # the new page view's ads become viewable and are sent
    page.goto("about:blank")  # leaving the page sends whatever is still queued, as a beacon
    page.wait_for_timeout(500)
    expected = {"impressions": dict(Counter(ads_queued(queued, "impression"))), "clicks": {4: 1, 5: 1}}
    assert ads_queued(queued, "click") == [4]
    wait_for(page, lambda: totals(mysql_db) == expected, 60, f"the database to hold {expected}")
    page.wait_for_timeout(2000)
    assert totals(mysql_db) == expected  # and nothing more arrives later
    stored = sum(real_redis.xlen(s) for s in ("impressions_stream", "clicks_stream"))
    assert stored == sum(sum(c.values()) for c in expected.values()), "each event stored once"
    assert page.console_log.problems() == []


def test_the_stats_page_renders_without_errors(site, page, mysql_db, real_redis):
    # Some counts to show: events through the batch endpoint, drained by the worker.
    page.goto(site + "/")
    body = [{"type": "impression", "ad_id": ad} for ad in (1, 1, 1, 2, 2, 3)] + [{"type": "click", "ad_id": 1}]
    answer = page.evaluate("""body => fetch("/v1/events", {method: "POST", body: JSON.stringify(body),
                                                          headers: {"Content-Type": "application/json"}})
                                      .then(r => r.json())""", body)
    assert answer["accepted"] == 7, answer
    wait_for(page, lambda: sum(totals(mysql_db)["impressions"].values()) >= 6, 60, "the counts")
    # and earlier days, written straight into the counts tables, for a chart with some history
    days = [datetime.date.today() - datetime.timedelta(days=d) for d in range(1, 6)]
    AdDailyImpressions.insert_many([(ad, day, 40 * (4 - ad) + 7 * i) for i, day in enumerate(days) for ad in (1, 2, 3)],
                                   fields=["ad_id", "date", "impressions"]).execute(mysql_db)
    AdDailyClicks.insert_many([(ad, day, ad + i) for i, day in enumerate(days) for ad in (1, 2)],
                              fields=["ad_id", "date", "clicks"]).execute(mysql_db)

    response = page.goto(site + "/stats?range=7d")
    assert response.status == 200
    with urllib.request.urlopen(site + "/v1/stats?range=7d", timeout=10) as answer:
        report = json.load(answer)
    assert page.inner_text("#total-clicks") == f"{report['totals']['clicks']:,}"
    assert page.inner_text("#total-impressions") == f"{report['totals']['impressions']:,}"
    assert report["totals"]["clicks"] == 1 + sum(ad + i for i in range(5) for ad in (1, 2))
    assert page.locator("svg.chart").count() == 3
    assert page.locator("#top-ads tbody tr").first.get_attribute("data-ad-row") == "1"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stats.png"), full_page=True)
    assert (ARTIFACTS / "stats.png").stat().st_size > 10_000
    assert page.console_log.problems() == []
