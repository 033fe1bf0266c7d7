"""How much bot filtering costs per request:

    .venv/bin/python -m bench.bots [--rounds 5]

Times, per user agent, the decision `tracker.bots.BotFilter` makes on each request, against
the alternatives: the crawler-user-agents package's own `is_crawler`, one big alternation of
its patterns, and (if installed) crawlerdetect. Browser user agents are the expensive case:
every pattern must fail. Prints microseconds per user agent (best of --rounds).
"""

from __future__ import annotations

import argparse
import re
import time

import crawleruseragents

from tracker.bots import BotFilter, PatternIndex, crawler_patterns

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
    "Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 "
    "Edg/131.0.0.0",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "[FBAN/FBIOS;FBAV/490.0.0.38.108;]",
]
BOTS = [ua for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA for ua in entry.get("instances", [])]


def per_call_us(function, samples: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for sample in samples:
            function(sample)
        best = min(best, (time.perf_counter() - start) / len(samples))
    return best * 1e6


def candidates() -> dict:
    patterns = crawler_patterns("all")
    one = re.compile("|".join(patterns))
    index = PatternIndex(patterns)
    uncached = BotFilter("all")
    cached = BotFilter("all")
    found = {
        "crawler-user-agents is_crawler()": crawleruseragents.is_crawler,
        "one alternation of all patterns": lambda ua: bool(one.search(ua)),
        "tracker PatternIndex (uncached)": index.search,
        "tracker BotFilter._is_bot (uncached)": uncached._is_bot,
        "tracker BotFilter.is_bot (cache hit)": cached.is_bot,
    }
    try:
        from crawlerdetect import CrawlerDetect  # noqa: PLC0415 - optional, only for comparison
        found["crawlerdetect (uncached)"] = lambda ua: CrawlerDetect()._check_crawler(ua)
    except ImportError:
        pass
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    BotFilter("crawlers")
    print(f"building the filter (once per process): {(time.perf_counter() - start) * 1e3:.1f} ms")
    print(f"{'us per user agent':40}{'browsers':>12}{'bots':>12}")
    for name, function in candidates().items():
        bots = BOTS if "alternation" not in name and "is_crawler()" not in name else BOTS[:500]
        print(f"{name:40}{per_call_us(function, BROWSERS, args.rounds):12.1f}"
              f"{per_call_us(function, bots, max(2, args.rounds // 2)):12.1f}")  # 2+: a warm cache


if __name__ == "__main__":
    main()
