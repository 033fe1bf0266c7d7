"""Which requests are not counted: known crawlers (by user agent) and browser prefetches.

The crawler patterns come from the `crawler-user-agents` package (a maintained list, released
monthly, MIT): about 1,500 regular expressions, each tagged (search-engine, seo, monitoring,
http-library, ...). Python's `re` tries every branch of one big alternation at every position
of the user agent, which costs ~0.8 ms per browser user agent, and the package's own
`is_crawler` ~0.16 ms. `PatternIndex` makes it ~0.013 ms without changing any answer: each
pattern is filed under the first three characters of a literal string that every match of it
must contain, so only the few patterns whose literal starts somewhere in the user agent are
tried. Answers are also cached per user agent string (real traffic repeats a few thousand).
`bench/bots.py` measures all of it.

Modes (TRACKER_BOT_FILTER):
- `crawlers` (default): every pattern except those tagged `http-library` (curl, python-requests,
  Go-http-client...). Those are how publishers' own servers and the README's examples call the
  API, which the PHP system counted; a crawler of pages is not.
- `all`: every pattern of the list.
- `off`: no user agent is filtered (prefetches still are).

E-mail image proxies that fetch a pixel when a person opens the message (Gmail's
GoogleImageProxy, YahooMailProxy) are listed as bots but are counted: for an e-mail pixel they
are the reader.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping

import crawleruseragents

log = logging.getLogger(__name__)

#: The list's tag for HTTP client libraries, which mode `crawlers` does not filter.
HTTP_LIBRARY_TAG = "http-library"
#: User agents fetching on behalf of a person opening an e-mail: counted, whatever the list says.
HUMAN_PROXIES = ("GoogleImageProxy", "YahooMailProxy")
#: Distinct user agents whose answer is cached; longer user agents are never cached.
CACHE_SIZE = 20_000
CACHE_MAX_CHARS = 512
#: Request headers (WSGI names) that announce a prefetch or prerender, and their telling values.
PREFETCH_HEADERS = ("HTTP_SEC_PURPOSE", "HTTP_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")
PREFETCH_WORDS = ("prefetch", "prerender", "preview")
#: Length of the literal prefix patterns are filed under.
GRAM = 3

try:  # the regex parser is private API; without it every pattern is simply always tried
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover
    sre_parse = sre_constants = None


def crawler_patterns(mode: str) -> list[str]:
    """The list's patterns for `mode` ("crawlers", "all" or "off")."""
    if mode == "off":
        return []
    entries = crawleruseragents.CRAWLER_USER_AGENTS_DATA
    return [entry["pattern"] for entry in entries
            if mode == "all" or HTTP_LIBRARY_TAG not in entry.get("tags", ())]


def required_literal(pattern: str) -> str:
    """A string every match of `pattern` contains ("" when none can be told).

    The longest run of plain characters at the top level of the pattern: those are matched in
    sequence by every match. Patterns with a top-level alternation or case-insensitive flags
    have none.
    """
    if sre_parse is None:
        return ""
    parsed = sre_parse.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:
        return ""
    best = run = ""
    for op, value in parsed:
        if op is sre_constants.LITERAL:
            run += chr(value)
            continue
        if op is sre_constants.BRANCH:
            return ""
        best, run = max(best, run, key=len), ""
    return max(best, run, key=len)


class PatternIndex:
    """Does any of many regular expressions match? The same answer as one big alternation, faster."""

    def __init__(self, patterns: Iterable[str]):
        self.by_prefix: dict[str, list[re.Pattern]] = {}
        self.always: list[re.Pattern] = []  # patterns without a usable literal: always tried
        for pattern in patterns:
            literal = required_literal(pattern)
            if len(literal) >= GRAM:
                self.by_prefix.setdefault(literal[:GRAM], []).append(re.compile(pattern))
            else:
                self.always.append(re.compile(pattern))

    def search(self, text: str) -> bool:
        if any(pattern.search(text) for pattern in self.always):
            return True
        by_prefix = self.by_prefix
        for i in range(len(text) - GRAM + 1):
            candidates = by_prefix.get(text[i:i + GRAM])
            if candidates and any(pattern.search(text) for pattern in candidates):
                return True
        return False


class BotFilter:
    """Decides whether a request's events are filtered, and why ("prefetch", "bot" or None)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.index = PatternIndex(crawler_patterns(mode))
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._is_bot)

    def reason(self, environ: Mapping[str, str]) -> str | None:
        if is_prefetch(environ):
            return "prefetch"
        if self.is_bot(environ.get("HTTP_USER_AGENT", "")):
            return "bot"
        return None

    def is_bot(self, user_agent: str) -> bool:
        if self.mode == "off" or not user_agent:
            return False
        if len(user_agent) > CACHE_MAX_CHARS:
            return self._is_bot(user_agent)
        return self._cached(user_agent)

    def _is_bot(self, user_agent: str) -> bool:
        return self.index.search(user_agent) and not any(proxy in user_agent for proxy in HUMAN_PROXIES)


def is_prefetch(environ: Mapping[str, str]) -> bool:
    """Is this a speculative request (Sec-Purpose/Purpose: prefetch, prerender; X-Moz: prefetch)?"""
    for header in PREFETCH_HEADERS:
        value = environ.get(header)
        if value and any(word in value.lower() for word in PREFETCH_WORDS):
            return True
    return False
