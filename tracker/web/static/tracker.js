/*! tracker.js: counts viewable impressions and clicks of the ads on a page.
 *
 * Include once:   <script src="https://YOUR-TRACKER/tracker.js" async></script>
 * Mark each ad:   <div data-ad-id="123"> ... </div>
 *
 * A viewable impression is counted when at least half of the ad's pixels are in the viewport
 * for one continuous second while the tab is visible (the IAB/MRC rule), at most once per ad
 * per page view. A click is counted when the ad, or anything inside it, is clicked. Ads added
 * later (MutationObserver) and ads inside scrolling containers are measured too.
 *
 * Events are batched and POSTed as text/plain JSON to /v1/events, each with a random event_id.
 * While the page lives, batches go out with fetch (keepalive), so that a failed batch (network
 * error, 429, 5xx) is seen and sent again with the same event ids, which the server stores
 * once. When the page is hidden or left, what is queued goes out with navigator.sendBeacon
 * (fetch with keepalive where a beacon is refused).
 *
 * Options, as attributes of the script tag:
 *   data-endpoint    where batches go (default: /v1/events beside this script)
 *   data-threshold   share of the ad's pixels that must be in view, 0..1 (default 0.5)
 *   data-dwell-ms    how long they must stay in view, in ms (default 1000)
 *   data-flush-ms    how long an event may wait for others before a batch is sent (default 1000)
 *   data-max-batch   most events per request (default 50)
 *   data-transport   "auto" (default: fetch, beacon on leaving) or "beacon" (beacon always)
 *   data-selector    which elements are ads (default "[data-ad-id]")
 */
(function () {
  "use strict";
  if (window.adTracker) return; // included twice: the first copy does the work

  var MAX_AD_ID = 2147483647;
  var MAX_TRIES = 8;            // sends of one event before it is given up
  var MAX_BACKOFF_MS = 60000;   // longest wait between two tries

  var script = document.currentScript;
  var scriptUrl = script && script.src ? script.src : location.href;
  function option(name, fallback) {
    var value = script && script.getAttribute("data-" + name);
    return value ? value : fallback;
  }
  function numberOption(name, fallback, min, max) {
    var value = parseFloat(option(name, ""));
    return value >= min && value <= max ? value : fallback;
  }
  var config = {
    endpoint: new URL(option("endpoint", "/v1/events"), scriptUrl).href,
    threshold: numberOption("threshold", 0.5, 0.01, 1),
    dwellMs: numberOption("dwell-ms", 1000, 0, 600000),
    flushMs: numberOption("flush-ms", 1000, 0, 600000),
    maxBatch: Math.floor(numberOption("max-batch", 50, 1, 10000)),
    transport: option("transport", "auto"),
    selector: option("selector", "[data-ad-id]")
  };

  function emit(name, detail) {
    document.dispatchEvent(new CustomEvent("tracker:" + name, { detail: detail }));
  }

  function warn(message, detail) {
    if (window.console) console.warn("tracker.js: " + message, detail === undefined ? "" : detail);
  }

  // -- ad ids and event ids ------------------------------------------------------------------

  // A bad id would fail its whole batch (the server validates all or nothing): skip the ad.
  function adIdOf(el) {
    var raw = el.getAttribute("data-ad-id");
    var id = /^[1-9][0-9]{0,9}$/.test(raw || "") ? Number(raw) : 0;
    return id <= MAX_AD_ID ? id : 0;
  }

  function newEventId() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID(); // secure contexts only
    var b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // a version 4 UUID, like randomUUID's
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  // -- the queue and its sending ---------------------------------------------------------------

  var queue = [];      // {event, tries}: not yet sent, or waiting for a retry
  var timer = null;    // the scheduled flush
  var backoffMs = 0;   // grows with consecutive failures, back to 0 on a success
  var notBefore = 0;   // after a failure, no batch is sent before this time (Date.now() ms)

  function enqueue(type, adId) {
    queue.push({ event: { type: type, ad_id: adId, event_id: newEventId() }, tries: 0 });
    emit(type, { adId: adId });
    if (queue.length >= config.maxBatch) flush();
    else schedule(config.flushMs);
  }

  function schedule(delayMs) {
    if (timer === null) timer = setTimeout(function () { timer = null; flush(); }, delayMs);
  }

  // Send everything queued. `leaving`: the page is being hidden or unloaded, so no answer can be
  // waited for: hand the batches to the browser as beacons.
  function flush(leaving) {
    clearTimeout(timer);
    timer = null;
    var wait = notBefore - Date.now();
    if (wait > 0 && !leaving) { schedule(wait); return; }
    while (queue.length) {
      var batch = queue.splice(0, config.maxBatch);
      batch.forEach(function (item) { item.tries += 1; });
      if ((leaving || config.transport === "beacon") && beacon(batch)) continue;
      post(batch);
    }
  }

  function body(batch) {
    return JSON.stringify(batch.map(function (item) { return item.event; }));
  }

  function beacon(batch) {
    // text/plain keeps the request "simple": no CORS preflight, which a beacon could not wait for.
    var sent = navigator.sendBeacon && navigator.sendBeacon(config.endpoint, new Blob([body(batch)], { type: "text/plain" }));
    if (sent) emit("sent", { events: batch.length, transport: "beacon" });
    return sent;
  }

  function post(batch) {
    fetch(config.endpoint, { method: "POST", body: body(batch), keepalive: true, credentials: "omit",
                             headers: { "Content-Type": "text/plain" } })
      .then(function (response) { return answered(batch, response); },
            function () { retry(batch, 0); }); // no answer: the batch may or may not be stored
  }

  function answered(batch, response) {
    var status = response.status;
    if (status >= 200 && status < 300) {
      backoffMs = notBefore = 0;
      emit("sent", { events: batch.length, transport: "fetch", status: status });
    } else if (status === 408 || status === 429 || status >= 500) {
      retry(batch, parseFloat(response.headers.get("Retry-After")) * 1000 || 0);
    } else {
      return response.json().then(function (answer) { refused(batch, status, answer); },
                                  function () { refused(batch, status, null); });
    }
  }

  // A 4xx other than 408/429: the server stored nothing. A batch too large for it is split; if
  // it names the items it refused, the others are sent again; otherwise the batch is given up.
  function refused(batch, status, answer) {
    var tooMany = status === 413 || (answer && answer.error === "Too many events");
    if (tooMany && batch.length > 1) {
      config.maxBatch = Math.ceil(batch.length / 2);
      requeue(batch, 0);
      return;
    }
    var bad = itemErrors(answer);
    var good = bad ? batch.filter(function (item, i) { return !bad[i]; }) : [];
    warn("the server refused " + (batch.length - good.length) + " event(s) with " + status, answer);
    if (good.length) requeue(good, 0);
  }

  function itemErrors(answer) {
    var items = answer && answer.items; // [{index, field, error}] of POST /v1/events
    if (!Array.isArray(items)) return null;
    var bad = {};
    items.forEach(function (item) { if (item && typeof item.index === "number") bad[item.index] = true; });
    return Object.keys(bad).length ? bad : null;
  }

  function retry(batch, retryAfterMs) {
    backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(1000, backoffMs * 2));
    var delay = Math.max(retryAfterMs, backoffMs * (0.5 + Math.random() / 2)); // jitter spreads clients out
    notBefore = Date.now() + delay;
    var again = batch.filter(function (item) { return item.tries < MAX_TRIES; });
    if (again.length < batch.length) warn("gave up " + (batch.length - again.length) + " event(s) after " + MAX_TRIES + " tries");
    emit("retry", { events: again.length, delayMs: delay });
    requeue(again, delay);
  }

  // The same event objects go back to the front of the queue: a retry carries the same event ids.
  function requeue(batch, delayMs) {
    queue.unshift.apply(queue, batch);
    if (queue.length) schedule(delayMs);
  }

  // -- viewability -----------------------------------------------------------------------------

  var seen = {};          // ad id -> true once its impression was counted on this page view
  var inView = new Map(); // ad element at or above the threshold -> its dwell timer (or null)

  function tabVisible() {
    return document.visibilityState === "visible";
  }

  // Hidden by CSS (visibility, opacity 0) while geometrically in view: not viewable.
  function rendered(el) {
    return !el.checkVisibility || el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
  }

  function startDwell(el) {
    var id = adIdOf(el);
    if (!id || seen[id] || inView.get(el) || !tabVisible()) return;
    inView.set(el, setTimeout(function () {
      inView.set(el, null);
      if (seen[id]) return;
      if (!rendered(el)) { startDwell(el); return; } // look again after another dwell
      seen[id] = true;
      enqueue("impression", id);
    }, config.dwellMs));
  }

  function pauseDwell(el) {
    clearTimeout(inView.get(el));
    inView.set(el, null);
  }

  function leave(el) {
    clearTimeout(inView.get(el));
    inView.delete(el);
  }

  function onIntersect(entries) {
    entries.forEach(function (entry) {
      var box = entry.boundingClientRect;
      var enough = entry.isIntersecting && box.width * box.height > 0 &&
                   entry.intersectionRatio >= config.threshold;
      if (!enough) leave(entry.target);
      else if (!inView.has(entry.target)) { inView.set(entry.target, null); startDwell(entry.target); }
    });
  }

  // -- which elements are ads ------------------------------------------------------------------

  var observer = "IntersectionObserver" in window ?
    new IntersectionObserver(onIntersect, { threshold: [0, config.threshold, 1] }) : null;

  function ads(node) {
    if (!node.querySelectorAll) return [];
    var found = Array.prototype.slice.call(node.querySelectorAll(config.selector));
    if (node.matches && node.matches(config.selector)) found.push(node);
    return found;
  }

  function watch(node) {
    ads(node).forEach(function (el) { if (observer && adIdOf(el)) observer.observe(el); });
  }

  function unwatch(node) {
    ads(node).forEach(function (el) { if (observer) observer.unobserve(el); leave(el); });
  }

  function onMutations(records) {
    records.forEach(function (record) {
      if (record.type === "attributes") { unwatch(record.target); watch(record.target); return; }
      record.removedNodes.forEach(unwatch);
      record.addedNodes.forEach(watch);
    });
  }

  // -- clicks ----------------------------------------------------------------------------------

  // A signed click link through the tracker's redirect (/c?...&sig=) is counted by the server.
  function countedByServer(target) {
    var link = target.closest("a[href]");
    if (!link) return false;
    var url = new URL(link.href, location.href);
    return url.origin === new URL(config.endpoint).origin && /\/c$/.test(url.pathname) && url.searchParams.has("sig");
  }

  function onClick(event) {
    if (event.type === "auxclick" && event.button !== 1) return; // only the middle button opens a link
    var el = event.target.closest && event.target.closest(config.selector);
    var id = el && adIdOf(el);
    if (!id || countedByServer(event.target)) return;
    enqueue("click", id);
    flush(); // the click may be leaving the page
  }

  // -- page life -------------------------------------------------------------------------------

  function onVisibility() {
    if (tabVisible()) { inView.forEach(function (timer, el) { startDwell(el); }); return; }
    inView.forEach(function (timer, el) { pauseDwell(el); });
    flush(true);
  }

  function newPageView() {
    seen = {};
    inView.forEach(function (timer, el) { startDwell(el); });
  }

  function start() {
    watch(document);
    new MutationObserver(onMutations).observe(document.documentElement, {
      childList: true, subtree: true, attributes: true, attributeFilter: ["data-ad-id"]
    });
  }

  document.addEventListener("click", onClick, true);
  document.addEventListener("auxclick", onClick, true);
  document.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("pagehide", function () { flush(true); });
  window.addEventListener("pageshow", function (event) { if (event.persisted) newPageView(); }); // back from the bfcache
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  window.adTracker = {
    config: config,
    flush: function () { flush(); },
    pageView: newPageView // a single-page app's new view: every ad may count again
  };
})();
