"""Bot and prefetch filtering: the crawler list's index, the rules, and the filtered counters."""

import datetime
import json
import random
import re

import crawleruseragents
import pytest

from bench.bots import BROWSERS  # real browsers' user agents, also timed there
from tests.unit.test_batch import make_app
from tests.unit.test_pixel_and_clicks import SECRET, link
from tests.unit.test_web import entries
from tests.wsgi import call
from tracker.bots import BotFilter, PatternIndex, crawler_patterns, is_prefetch, required_literal
from tracker.cli import main

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
DATA = crawleruseragents.CRAWLER_USER_AGENTS_DATA


# -- the index answers exactly as the list's patterns do -----------------------------------------

def mutations(texts, rng, n):
    for text in rng.choices(texts, k=n):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice("aZ09/ ;()-_.bot"))
        if len(chars) > 4 and rng.random() < 0.5:
            del chars[rng.randrange(len(chars))]
        yield "".join(chars)


def test_the_index_agrees_with_one_big_alternation_on_every_sample():
    patterns = crawler_patterns("all")
    reference = re.compile("|".join(patterns))
    index = PatternIndex(patterns)
    samples = [ua for entry in DATA for ua in entry.get("instances", [])] + BROWSERS
    samples += list(mutations(samples, random.Random(4), 3000))
    disagreements = [ua for ua in samples if bool(reference.search(ua)) != index.search(ua)]
    assert disagreements == []
    assert sum(index.search(ua) for ua in samples) > 1000  # it does find bots


def test_nearly_every_pattern_is_filed_under_a_literal():
    index = PatternIndex(crawler_patterns("all"))
    assert len(index.always) < 20


@pytest.mark.parametrize("pattern, literal", [
    ("Googlebot\\/", "Googlebot/"), ("^curl", "curl"), ("[wW]get", "get"), ("a|bcd", ""), ("(?i)bingbot", ""),
    ("Mediapartners-Google", "Mediapartners-Google"), ("x[0-9]+yz", "yz"),
])
def test_required_literals(pattern, literal):
    assert required_literal(pattern) == literal


# -- rules ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, user_agent, bot", [
    ("crawlers", GOOGLEBOT, True),
    ("crawlers", HEADLESS, True),
    ("crawlers", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
    ("crawlers", "curl/8.5.0", False),  # an HTTP library: publishers' servers, the README's examples
    ("crawlers", "python-requests/2.32.3", False),
    ("all", "curl/8.5.0", True),
    ("all", "python-requests/2.32.3", True),
    ("crawlers", GMAIL, False),  # an e-mail being opened
    ("all", GMAIL, False),
    ("off", GOOGLEBOT, False),
    ("crawlers", "", False),
    *[("all", browser, False) for browser in BROWSERS],
])
def test_which_user_agents_are_bots(mode, user_agent, bot):
    assert BotFilter(mode).is_bot(user_agent) is bot


@pytest.mark.parametrize("headers, prefetch", [
    ({"HTTP_SEC_PURPOSE": "prefetch"}, True),
    ({"HTTP_SEC_PURPOSE": "prefetch;prerender"}, True),
    ({"HTTP_PURPOSE": "prefetch"}, True),
    ({"HTTP_X_PURPOSE": "preview"}, True),
    ({"HTTP_X_MOZ": "prefetch"}, True),
    ({"HTTP_SEC_FETCH_DEST": "image"}, False),
    ({}, False),
])
def test_prefetch_headers(headers, prefetch):
    assert is_prefetch(headers) is prefetch


def test_a_prefetch_is_filtered_even_with_bot_filtering_off():
    assert BotFilter("off").reason({"HTTP_SEC_PURPOSE": "prefetch", "HTTP_USER_AGENT": BROWSERS[0]}) == "prefetch"
    assert BotFilter("crawlers").reason({"HTTP_USER_AGENT": GOOGLEBOT}) == "bot"
    assert BotFilter("crawlers").reason({"HTTP_USER_AGENT": BROWSERS[0]}) is None


# -- every route: answered normally, not counted, counted as filtered ---------------------------

@pytest.fixture
def app(settings, redis_client, sqlite_url):
    return make_app(settings, redis_client, sqlite_url, click_secret=SECRET)


def today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()  # the settings' timezone


def filtered(app, day=None):
    day = day or today()
    body = call(app, "GET", f"/v1/filtered?from={day}&to={day}").json()
    return body["totals"]


def nothing_stored(client):
    return entries(client, "impressions_stream") == [] and entries(client, "clicks_stream") == []


@pytest.mark.parametrize("headers, reason", [({"User-Agent": GOOGLEBOT}, "bot"), ({"Sec-Purpose": "prefetch"}, "prefetch")])
def test_single_event_routes_answer_success_but_count_as_filtered(app, redis_client, headers, reason):
    response = call(app, "GET", "/track_impression.php?ad_id=5", headers=headers)
    assert response.status == 200
    assert response.json()["status"] == "success" and response.json()["filtered"] == reason
    assert response.json()["stream_id"] is None
    call(app, "POST", "/v1/clicks", '{"ad_id": 5}', "application/json", headers=headers)
    assert nothing_stored(redis_client)
    totals = filtered(app)
    assert totals["impressions"][reason] == 1 and totals["clicks"][reason] == 1


def test_a_filtered_batch_counts_each_kind(app, redis_client):
    events = [{"type": "impression", "ad_id": 1}] * 3 + [{"type": "click", "ad_id": 2}]
    response = call(app, "POST", "/v1/events", json.dumps(events), "text/plain", headers={"User-Agent": HEADLESS})
    body = response.json()
    assert response.status == 200 and (body["accepted"], body["filtered"], body["reason"]) == (0, 4, "bot")
    assert [e["status"] for e in body["events"]] == ["filtered"] * 4
    assert nothing_stored(redis_client)
    assert filtered(app) == {"impressions": {"bot": 3, "prefetch": 0}, "clicks": {"bot": 1, "prefetch": 0}}


def test_a_filtered_batch_is_still_validated(app, redis_client):
    response = call(app, "POST", "/v1/events", '[{"type": "click", "ad_id": 0}]', "application/json",
                    headers={"User-Agent": GOOGLEBOT})
    assert response.status == 400 and filtered(app)["clicks"]["bot"] == 0


def test_a_filtered_pixel_still_answers_the_gif(app, redis_client):
    response = call(app, "GET", "/i.gif?ad_id=9", headers={"Purpose": "prefetch"})
    assert response.status == 200 and response.header("Content-Type") == "image/gif"
    assert nothing_stored(redis_client) and filtered(app)["impressions"]["prefetch"] == 1


def test_a_filtered_click_still_redirects(app, redis_client):
    response = call(app, "GET", link(), headers={"User-Agent": GOOGLEBOT})
    assert response.status == 302 and response.header("Location")
    assert nothing_stored(redis_client) and filtered(app)["clicks"]["bot"] == 1


def test_people_are_counted(app, redis_client):
    call(app, "GET", "/i.gif?ad_id=9", headers={"User-Agent": BROWSERS[0]})
    call(app, "GET", "/i.gif?ad_id=9", headers={"User-Agent": GMAIL})
    call(app, "GET", "/v1/impressions?ad_id=9", headers={"User-Agent": "curl/8.5.0"})
    assert len(entries(redis_client, "impressions_stream")) == 3
    assert filtered(app)["impressions"] == {"bot": 0, "prefetch": 0}


def test_filtering_stores_nothing_about_the_visitor(app, redis_client):
    call(app, "GET", "/i.gif?ad_id=9", headers={"User-Agent": GOOGLEBOT})
    keys = [key.decode() for key in redis_client.keys("*")]
    assert [key for key in keys if "filtered" in key] == [f"tracker:filtered:{today()}"]
    dump = json.dumps({key: {k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()}
                       for key in keys if redis_client.type(key) == b"hash"})
    assert "Googlebot" not in dump and "127.0.0.1" not in dump


def test_filtered_counts_expire(app, redis_client):
    call(app, "GET", "/i.gif?ad_id=9", headers={"User-Agent": GOOGLEBOT})
    ttl = redis_client.ttl(f"tracker:filtered:{today()}")
    assert 399 * 86400 < ttl <= 400 * 86400


def test_the_filtered_report_is_zero_filled_and_validated(app):
    body = call(app, "GET", "/v1/filtered?from=2026-01-01&to=2026-01-03").json()
    assert [d["date"] for d in body["days"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert body["days"][0] == {"date": "2026-01-01", "impressions": {"bot": 0, "prefetch": 0},
                               "clicks": {"bot": 0, "prefetch": 0}}
    assert call(app, "GET", "/v1/filtered?from=2026-01-03&to=2026-01-01").status == 400
    assert call(app, "GET", "/v1/filtered?from=2024-01-01&to=2026-01-01").status == 400
    assert call(app, "GET", "/v1/filtered?from=yesterday").status == 400


@pytest.mark.integration
def test_tracker_filtered_prints_the_counts(settings, real_redis, real_redis_url, sqlite_url, monkeypatch, capsys):
    app = make_app(settings, real_redis, sqlite_url)
    call(app, "GET", "/i.gif?ad_id=9", headers={"User-Agent": GOOGLEBOT})
    monkeypatch.setenv("REDIS_URL", real_redis_url)
    assert main(["filtered", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["impressions"]["bot"] == 1
    assert main(["filtered"]) == 0
    assert "impressions:bot" in capsys.readouterr().out
