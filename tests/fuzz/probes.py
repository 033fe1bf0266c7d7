"""Hypothesis strategies for requests to the ingest routes: bad, odd, huge, unicode, negative, repeated.

A `Probe` is one HTTP request. Query strings are always ASCII on the wire (a browser
percent-encodes the rest), but what they encode is anything: invalid UTF-8, malformed escapes,
parameters given twice, ids with 400 digits. Bodies are JSON of every shape, forms, multipart,
random bytes, or larger than the limit; content types are known, wrong, or made up.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass, field

from hypothesis import strategies as st

from tests.fuzz.routes import Route
from tracker.signing import ClickSigner

#: The click secret of the apps under test, so that /c checks signatures (not 501).
CLICK_SECRET = "fuzz-click-secret-0123456789abcdef"
SIGNER = ClickSigner(CLICK_SECRET)
OTHER_METHODS = ("HEAD", "PUT", "DELETE", "PATCH")
KEYS = ("ad_id", "event_id", "format", "url", "sig", "ts", "type")
#: Values some parameters take on purpose (format=gif turns the old impression URL into the pixel).
VALUES = ("gif", "json", "impression", "click")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # with its query string; ASCII
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)


ascii_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
ad_id_texts = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70).map(str),
    st.sampled_from(["", "0", "1", "7", "2147483647", "2147483648", "12x", "1e3", " 7", "7 ", "+7", "-3", "1.5",
                     "0x10", "007", "\uff11\uff12", "\u0663", "NaN", "null", "true", "[1]", "7\x00", "7\n"]),
    st.text(max_size=30),
    st.text(alphabet="0123456789", min_size=11, max_size=400),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
ad_ids = st.one_of(st.integers(1, 2**31 - 1), st.integers(-2**70, 2**70), ad_id_texts, json_values)
event_ids = st.one_of(st.uuids().map(str), st.text(max_size=80), ascii_text,
                      st.sampled_from(["short", "{clicks_stream}:abcdefghijk", "x" * 65, "abcdefghijklmnop\n",
                                       "fuzz-repeated-event-id-0001"]))
timestamps = st.one_of(st.integers(int(time.time()) - 8000, int(time.time()) + 8000), st.integers(-2**70, 2**70),
                       st.floats(), st.text(max_size=12), st.none())
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=10))

# -- query strings --------------------------------------------------------------------------------

RAW_FRAGMENTS = ["%", "%zz", "%ff", "%C3", "%00", "&&", "=", "==", ";", "+", "ad_id", "ad_id=", "%u0031", "%25"]


def _pair(key: str, value: str) -> str:
    return urllib.parse.quote(key, safe="") + "=" + urllib.parse.quote(value, safe="")


query_pairs = st.tuples(keys, st.one_of(ad_id_texts, event_ids, ascii_text, st.sampled_from(VALUES))).map(
    lambda kv: _pair(*kv))
query_strings = st.lists(st.one_of(query_pairs, query_pairs, st.sampled_from(RAW_FRAGMENTS)), max_size=6).map("&".join)
#: Usually one plausible ad_id first, so that the rest of the request gets exercised too.
plausible_queries = st.tuples(st.integers(1, 2**31 - 1), query_strings).map(lambda q: f"ad_id={q[0]}&{q[1]}")


@st.composite
def signed_links(draw) -> str:
    """A /c query: signed for its (ad_id, url), sometimes tampered with afterwards."""
    ad_id = draw(st.integers(1, 2**31 - 1))
    url = draw(st.one_of(st.sampled_from(["https://advertiser.example/landing", "http://a.example/?q=1&r=%20",
                                          "https://xn--bcher-kva.example/p#frag"]),
                         st.from_regex(r"\Ahttps?://[a-z]{1,10}\.example(/[!-~]{0,40})?\Z")))
    params = [("ad_id", str(ad_id)), ("url", url), ("sig", SIGNER.sign(ad_id, url))]
    tamper = draw(st.sampled_from(["none", "none", "repeat", "drop", "change", "extra"]))
    if tamper == "repeat":
        params.append(draw(st.sampled_from(params)))
    elif tamper == "drop":
        params.pop(draw(st.integers(0, 2)))
    elif tamper == "change":
        index = draw(st.integers(0, 2))
        params[index] = (params[index][0], draw(st.one_of(ad_id_texts, ascii_text)))
    elif tamper == "extra":
        params.append((draw(keys), draw(ascii_text)))
    return "&".join(_pair(k, v) for k, v in params)


# -- bodies ----------------------------------------------------------------------------------------

def _json(value, ensure_ascii: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


event_objects = st.fixed_dictionaries({"ad_id": ad_ids}, optional={"event_id": event_ids, "ts": timestamps,
                                                                   "type": st.sampled_from(["impression", "click"])})
batch_items = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["impression", "click"]), "ad_id": st.integers(1, 2**31 - 1)},
                          optional={"event_id": st.one_of(st.uuids().map(str), event_ids), "ts": timestamps}),
    st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["impression", "click", "view", "Click"]), json_scalars),
                           "ad_id": ad_ids}, optional={"event_id": event_ids, "ts": timestamps}),
    json_values,
)
json_documents = st.one_of(event_objects, st.lists(batch_items, max_size=120), json_values,
                           st.dictionaries(keys, json_values, max_size=5))
multipart_bodies = st.tuples(st.sampled_from(["XyZ", "other"]), ad_id_texts).map(
    lambda b: (f'--XyZ\r\nContent-Disposition: form-data; name="ad_id"\r\n\r\n{b[1]}\r\n--{b[0]}--\r\n')
    .encode("utf-8", "surrogatepass"))
#: Around the app's limit (64 KiB by default), and up to the server's (4 times that; see tracker/server.py).
huge_bodies = st.sampled_from([65_500, 65_537, 250_000]).map(lambda n: b'{"ad_id": 7, "pad": "' + b"x" * n + b'"}')
bodies = st.one_of(
    st.just(b""),
    st.tuples(json_documents, st.booleans()).map(lambda d: _json(*d)),
    st.lists(query_pairs, max_size=4).map(lambda pairs: "&".join(pairs).encode()),
    multipart_bodies,
    st.binary(max_size=200),
    st.tuples(json_documents, st.binary(min_size=1, max_size=8)).map(lambda d: _json(d[0], False) + d[1]),
    huge_bodies,
)
content_types = st.one_of(st.none(), st.sampled_from([
    "application/json", "application/json; charset=utf-8", "text/plain", "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=XyZ",
    "application/xml", "image/gif", "APPLICATION/JSON", "text/html; charset=latin1", ";", "application/json;;"]),
    ascii_text)
user_agents = st.sampled_from(["Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "Googlebot/2.1", "curl/8.5.0", "",
                               "Mozilla/5.0 (compatible; bingbot/2.0)", "x" * 300])
headers = st.fixed_dictionaries({}, optional={"User-Agent": st.one_of(user_agents, ascii_text),
                                              "Sec-Purpose": st.sampled_from(["prefetch", "prefetch;prerender", "x"]),
                                              "X-Forwarded-For": st.one_of(st.ip_addresses().map(str), ascii_text)})


good_ad_ids = st.integers(1, 2**31 - 1)
good_event_ids = st.one_of(st.uuids().map(str), st.just("fuzz-repeated-event-id-0001"))
json_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain;charset=UTF-8"])
good_batches = st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["impression", "click"]), "ad_id": good_ad_ids},
    optional={"event_id": good_event_ids, "ts": st.integers(int(time.time()) - 600, int(time.time()) + 600)}),
    min_size=1, max_size=20)


@st.composite
def plausible(draw, route: Route) -> Probe:
    """A request the route should accept, with odd extras: repeated or unknown parameters, odd headers."""
    extra = draw(st.one_of(st.just(""), query_strings.map(lambda q: "&" + q)))
    if route.batch:
        return Probe("POST", route.path + ("?" + extra[1:] if extra else ""),
                     _json(draw(good_batches), draw(st.booleans())), draw(json_types), draw(headers))
    if route.answer == "redirect":
        return Probe("GET", f"{route.path}?{draw(signed_links())}", headers=draw(headers))
    ad_id = draw(good_ad_ids)
    event = draw(st.one_of(st.just(""), good_event_ids.map(lambda e: f"&event_id={e}")))
    if route.gif_format and draw(st.booleans()):
        extra += draw(st.sampled_from(["&format=gif", "&format=json&format=gif", "&format=gif&format=png"]))
    if route.answer == "gif" or draw(st.booleans()):
        return Probe("GET", f"{route.path}?ad_id={ad_id}{event}{extra}", headers=draw(headers))
    body = {"ad_id": draw(st.sampled_from([ad_id, str(ad_id)]))}
    return Probe("POST", f"{route.path}?{event[1:]}{extra}", _json(body, True), draw(json_types), draw(headers))


@st.composite
def wild(draw, route: Route) -> Probe:
    """Anything: mostly the route's own methods, sometimes another."""
    method = draw(st.one_of(st.sampled_from(route.methods), st.sampled_from(route.methods),
                            st.sampled_from(OTHER_METHODS)))
    query = draw(signed_links() if route.answer == "redirect" and draw(st.booleans()) else
                 st.one_of(query_strings, plausible_queries, st.just("")))
    path = route.path + (f"?{query}" if query else "")
    body = draw(bodies) if method in ("POST", "PUT", "PATCH", "DELETE") else b""
    return Probe(method, path, body, draw(content_types), draw(headers))


def probes(route: Route):
    """Requests to `route`: a third plausible (so that storing is exercised too), the rest wild."""
    return st.one_of(plausible(route), wild(route), wild(route))
