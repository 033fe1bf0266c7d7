"""The stats API's ranges and CSV export, the /stats page and its SVG charts, called in-process."""

import csv
import datetime
import io
import re

import peewee
import pytest

from tests.unit.test_web import app, layout_groups  # noqa: F401  (fixtures)
from tests.wsgi import call
from tracker.models import AdDailyClicks, AdDailyImpressions
from tracker.reports import range_dates
from tracker.web.charts import daily_chart, nice_step, sparkline

TODAY = datetime.date(2026, 11, 24)


@pytest.fixture
def counts(sqlite_url):
    """Ad 7: 40 impressions and 2 clicks today, 10 impressions 3 days ago; ad 8: 5 impressions today."""
    db = peewee.SqliteDatabase(sqlite_url.removeprefix("sqlite:///"))
    today = datetime.datetime.now(datetime.timezone.utc).date()
    AdDailyImpressions.insert_many([(7, today, 40), (7, today - datetime.timedelta(days=3), 10), (8, today, 5)],
                                   fields=["ad_id", "date", "impressions"]).execute(db)
    AdDailyClicks.insert(ad_id=7, date=today, clicks=2).execute(db)
    db.close()
    return today


@pytest.mark.parametrize("name, start, end", [
    ("today", TODAY, TODAY),
    ("yesterday", TODAY - datetime.timedelta(days=1), TODAY - datetime.timedelta(days=1)),
    ("1d", TODAY, TODAY),
    ("7d", datetime.date(2026, 11, 18), TODAY),
    ("90d", datetime.date(2026, 8, 27), TODAY),
    ("366d", datetime.date(2025, 11, 24), TODAY),
])
def test_named_ranges_end_today(name, start, end):
    assert range_dates(name, TODAY) == (start, end)


@pytest.mark.parametrize("name", ["0d", "367d", "7", "d", "7days", "-7d", "07d", "week"])
def test_unknown_ranges_are_refused(name):
    with pytest.raises(ValueError):
        range_dates(name, TODAY)


def test_stats_api_takes_a_range(app, counts):
    today = counts.isoformat()
    assert call(app, "GET", "/v1/stats?range=today").json()["totals"] == {"impressions": 45, "clicks": 2,
                                                                          "ctr": round(2 / 45, 6)}
    week = call(app, "GET", "/v1/stats?range=7d&ad_id=7").json()
    assert week["to"] == today and len(week["days"]) == 7
    assert week["totals"] == {"impressions": 50, "clicks": 2, "ctr": 0.04}


@pytest.mark.parametrize("query", ["range=forever", "range=7d&from=2026-01-01", "range=7d&to=2026-01-01"])
def test_stats_api_refuses_a_bad_or_overdetermined_range(app, query):
    response = call(app, "GET", f"/v1/stats?{query}")
    assert response.status == 400 and response.json()["error"] == "Invalid report range"


def test_csv_per_ad_per_day_holds_the_same_numbers_as_the_json(app, counts):
    report = call(app, "GET", "/v1/stats?range=7d").json()
    response = call(app, "GET", "/v1/stats.csv?range=7d")
    assert response.status == 200 and response.header("Content-Type") == "text/csv; charset=utf-8"
    assert response.header("Content-Disposition").startswith('attachment; filename="ad-stats-')
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    expected = [{"date": d["date"], "ad_id": str(ad["ad_id"]), "impressions": str(d["impressions"]),
                 "clicks": str(d["clicks"]), "ctr": "" if d["ctr"] is None else str(d["ctr"])}
                for ad in report["ads"] for d in ad["days"]]
    assert rows == expected and len(rows) == 3


def test_csv_per_day_is_the_zero_filled_daily_totals(app, counts):
    response = call(app, "GET", "/v1/stats.csv?range=7d&by=day")
    lines = response.body.decode().splitlines()
    assert lines[0] == "date,impressions,clicks,ctr" and len(lines) == 8
    assert lines[-1] == f"{counts.isoformat()},45,2,0.044444"
    assert lines[1].endswith(",0,0,")  # a day without impressions has no CTR


@pytest.mark.parametrize("query", ["by=week", "range=x", "ad_id=0"])
def test_csv_refuses_bad_queries_as_json(app, query):
    response = call(app, "GET", f"/v1/stats.csv?{query}")
    assert response.status == 400 and "error" in response.json()


def test_stats_page_shows_totals_charts_and_top_ads(app, counts):
    response = call(app, "GET", "/stats?range=7d")
    html = response.body.decode()
    assert response.status == 200 and response.header("Content-Type") == "text/html; charset=utf-8"
    assert re.search(r'id="total-impressions">55<', html) and re.search(r'id="total-clicks">2<', html)
    assert re.search(r'id="total-ctr">3.64 %<', html)
    assert html.count('<svg class="chart"') == 3
    assert [int(a) for a in re.findall(r'data-ad-row="(\d+)"', html)] == [7, 8]  # most seen first
    assert 'href="/v1/stats.csv?range=7d"' in html and 'href="/v1/stats.csv?range=7d&amp;by=day"' in html


def test_stats_page_loads_nothing_from_elsewhere(app, counts):
    response = call(app, "GET", "/stats")
    html = response.body.decode()
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no other host, no CDN, no web font
    assert "default-src 'none'" in response.header("Content-Security-Policy")


def test_stats_page_reports_a_bad_query_on_the_page(app):
    response = call(app, "GET", "/stats?range=7d&from=2026-01-01&ad_id=%3Cb%3E")
    assert response.status == 400 and b'class="error"' in response.body
    assert b"<b>" not in response.body  # the query is echoed escaped


def test_stats_page_without_data_says_so(app):
    html = call(app, "GET", "/stats?range=today").body.decode()
    assert "nothing counted in this range" in html and "No ad has been counted" in html


@pytest.mark.parametrize("top, integer, step", [(0, True, 1), (3, True, 1), (10, True, 3), (100, True, 25),
                                                (101, True, 50), (0.05, False, 0.02), (0.9, False, 0.25)])
def test_nice_steps_cover_the_maximum_in_four_round_steps(top, integer, step):
    assert nice_step(top, integer) == pytest.approx(step)
    assert nice_step(top, integer) * 4 >= top


def test_a_line_chart_breaks_where_a_day_has_no_value():
    svg = daily_chart("CTR", ["a", "b", "c", "d", "e"], [0.1, 0.2, None, 0.3, 0.1], color="#000",
                      fmt=str, style="line", integer=False)
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 4
    assert "<title>c: –</title>" not in svg  # no point for the missing day


def test_chart_labels_are_escaped():
    svg = daily_chart("<x>", ["<d>"], [1], color="#000", fmt=str)
    assert "<x>" not in svg and "&lt;d&gt;" in svg
    assert "&lt;x&gt;" in sparkline([1, 2], color="#000", label="<x>")
