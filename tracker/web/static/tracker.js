/*! tracker.js: counts viewable impressions and clicks of the ads on a page.
 *
 * Include once:   <script src="https://YOUR-TRACKER/tracker.js" defer></script>
 * Mark each ad:   <div data-ad-id="123"> ... </div>
 *
 * An impression is counted when at least half of the ad is in the viewport for one continuous
 * second while the tab is visible (the IAB/MRC viewability rule), at most once per ad per page
 * view. A click is counted when the ad (or anything inside it) is clicked.
 *
 * Options, as attributes of the script tag:
 *   data-endpoint   where events go (default: the origin this script was loaded from)
 *   data-threshold  share of the ad that must be visible, 0..1 (default 0.5)
 *   data-dwell-ms   how long it must stay visible (default 1000)
 *   data-selector   how ads are found (default "[data-ad-id]")
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var attr = function (name, fallback) {
    var value = script && script.getAttribute("data-" + name);
    return value === null || value === undefined || value === "" ? fallback : value;
  };
  var origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var config = {
    endpoint: attr("endpoint", origin).replace(/\/+$/, ""),
    threshold: parseFloat(attr("threshold", "0.5")),
    dwellMs: parseInt(attr("dwell-ms", "1000"), 10),
    selector: attr("selector", "[data-ad-id]")
  };

  function send(kind, adId) {
    var url = config.endpoint + "/v1/" + kind;
    var body = JSON.stringify({ ad_id: adId });
    // text/plain keeps this a "simple" request: no CORS preflight, and sendBeacon accepts it.
    var blob = new Blob([body], { type: "text/plain" });
    if (navigator.sendBeacon && navigator.sendBeacon(url, blob)) return;
    if (window.fetch) {
      fetch(url, { method: "POST", body: body, keepalive: true, mode: "cors",
                   headers: { "Content-Type": "text/plain" } }).catch(function () {});
    }
  }

  var seen = {};      // ad ids whose impression was sent on this page view
  var timers = {};    // ad id -> dwell timer while the ad is visible enough
  var visible = {};   // ad id -> element currently at or above the threshold

  function adId(el) {
    var id = parseInt(el.getAttribute("data-ad-id"), 10);
    return id > 0 ? id : null;
  }

  function startDwell(id) {
    if (seen[id] || timers[id] || document.visibilityState !== "visible") return;
    timers[id] = setTimeout(function () {
      delete timers[id];
      if (!seen[id] && visible[id] && document.visibilityState === "visible") {
        seen[id] = true;
        send("impressions", id);
        document.dispatchEvent(new CustomEvent("tracker:impression", { detail: { adId: id } }));
      }
    }, config.dwellMs);
  }

  function stopDwell(id) {
    clearTimeout(timers[id]);
    delete timers[id];
  }

  function onIntersect(entries) {
    entries.forEach(function (entry) {
      var id = adId(entry.target);
      if (!id) return;
      if (entry.isIntersecting && entry.intersectionRatio >= config.threshold) {
        visible[id] = true;
        startDwell(id);
      } else {
        delete visible[id];
        stopDwell(id);
      }
    });
  }

  document.addEventListener("visibilitychange", function () {
    Object.keys(visible).forEach(function (id) {
      if (document.visibilityState === "visible") startDwell(id); else stopDwell(id);
    });
  });

  function onClick(event) {
    var el = event.target.closest && event.target.closest(config.selector);
    var id = el && adId(el);
    if (!id) return;
    send("clicks", id);
    document.dispatchEvent(new CustomEvent("tracker:click", { detail: { adId: id } }));
  }

  function start() {
    if (!("IntersectionObserver" in window)) return;
    var observer = new IntersectionObserver(onIntersect, { threshold: [0, config.threshold, 1] });
    document.querySelectorAll(config.selector).forEach(function (el) { observer.observe(el); });
    document.addEventListener("click", onClick, true);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
