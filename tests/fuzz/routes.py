"""Every ingest route, in one place: the fuzz tests throw bad input at each route listed here.

A new route is one line. `answer` says what a route answers on its own methods:
    "json"      JSON with the CORS headers, success or error (an OPTIONS preflight: empty body)
    "gif"       the 1x1 GIF whatever the status, the reason of a 4xx in X-Tracker-Error (also a
                route with `gif_format` when asked for ?format=gif)
    "redirect"  302 to the signed URL on success, else a JSON error with CORS headers
Any other method gets Bottle's 405, as JSON with CORS headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracker.events import CLICK, IMPRESSION, Kind


@dataclass(frozen=True)
class Route:
    path: str
    kind: Kind | None  # the stream a success writes to; None: the request names it (the batch)
    methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")
    answer: str = "json"
    batch: bool = False  # a JSON array of events, not one event
    gif_format: bool = False  # ?format=gif makes it the pixel

    @property
    def success(self) -> int:
        return 302 if self.answer == "redirect" else 200

    def answers_gif(self, query: dict[str, list[str]]) -> bool:
        """Whether a request with this query is answered with the pixel (the last `format` counts)."""
        return self.answer == "gif" or (self.gif_format and query.get("format", [""])[-1] == "gif")


INGEST_ROUTES = (
    Route("/track_impression.php", IMPRESSION, gif_format=True),
    Route("/track_click.php", CLICK),
    Route("/v1/impressions", IMPRESSION, gif_format=True),
    Route("/v1/clicks", CLICK),
    Route("/v1/events", None, methods=("POST", "OPTIONS"), batch=True),
    Route("/i.gif", IMPRESSION, methods=("GET",), answer="gif"),
    Route("/c", CLICK, methods=("GET",), answer="redirect"),
)
