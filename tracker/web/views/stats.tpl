<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ad stats</title>
<link rel="icon" href="data:,">
<style>
  :root { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; background: #f4f5f7; }
  body { margin: 0; }
  header, main { max-width: 960px; margin: 0 auto; padding: .8rem 1.5rem; }
  h1 { font-size: 1.4rem; margin: .4rem 0; }
  h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
  a { color: #2f6fde; }
  nav { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; }
  nav a { padding: .3rem .75rem; border-radius: 999px; background: #fff; text-decoration: none;
          border: 1px solid #d5d9e0; color: #1d2330; font-size: .9rem; }
  nav a.active { background: #1d2330; color: #fff; border-color: #1d2330; }
  nav .spacer { flex: 1; }
  form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: .8rem 0 0; font-size: .85rem; }
  form label { display: flex; flex-direction: column; gap: .2rem; color: #4a5263; }
  form input { font: inherit; padding: .3rem .4rem; border: 1px solid #d5d9e0; border-radius: 6px; width: 9.5rem; }
  form button { font: inherit; padding: .35rem .9rem; border-radius: 6px; border: 0; background: #2f6fde; color: #fff; }
  .cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 1rem; margin-top: 1rem; }
  .card { background: #fff; border-radius: 10px; padding: .8rem 1rem; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  .card .label { color: #6b7385; font-size: .85rem; }
  .card .value { font-size: 1.6rem; font-weight: 600; margin-top: .2rem; }
  .panel { background: #fff; border-radius: 10px; padding: .6rem .8rem .2rem; margin-bottom: .8rem;
           box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  .panel h3 { margin: 0 0 .2rem; font-size: .9rem; color: #4a5263; font-weight: 600; }
  svg.chart { width: 100%; height: auto; display: block; }
  svg .grid { stroke: #e6e8ec; stroke-width: 1; }
  svg .axis { fill: #6b7385; font-size: 11px; font-family: inherit; }
  svg .empty { fill: #8a91a1; font-size: 13px; }
  table { border-collapse: collapse; width: 100%; background: #fff; border-radius: 10px; overflow: hidden;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); font-size: .92rem; }
  th, td { text-align: right; padding: .45rem .7rem; border-bottom: 1px solid #eef0f3; white-space: nowrap; }
  th { color: #4a5263; font-weight: 600; background: #fafbfc; }
  th.left, td.left { text-align: left; }
  .share { display: inline-block; width: 70px; height: 8px; background: #eef0f3; border-radius: 4px;
           vertical-align: middle; margin-left: .4rem; overflow: hidden; }
  .share span { display: block; height: 100%; background: #2f6fde; }
  .error { background: #fdecea; color: #8a1c12; padding: .8rem 1rem; border-radius: 8px; }
  .note { color: #6b7385; font-size: .85rem; }
</style>
</head>
<body>
<header>
  <h1>Ad stats</h1>
  <nav aria-label="Range">
    % for label, href, active in ranges:
    <a href="{{href}}" class="{{'active' if active else ''}}">{{label}}</a>
    % end
    <span class="spacer"></span>
    <a href="{{csv_by_ad}}" download>CSV per ad</a>
    <a href="{{csv_by_day}}" download>CSV per day</a>
  </nav>
  <form method="get" action="/stats">
    <label>From <input type="date" name="from" value="{{query['from']}}"></label>
    <label>To <input type="date" name="to" value="{{query['to']}}"></label>
    <label>Ads (ids, comma-separated) <input name="ad_id" value="{{query['ad_id']}}" placeholder="all"></label>
    <label>Top <input name="limit" value="{{query['limit']}}" placeholder="20" inputmode="numeric" style="width:4rem"></label>
    <button type="submit">Show</button>
  </form>
</header>
<main>
% if error:
  <p class="error" role="alert">{{error}}</p>
% else:
  <p class="note">{{report['from']}} to {{report['to']}}, days in {{report['timezone']}}.
  Counts include today's events within a few seconds of their arrival.</p>
  <section class="cards" aria-label="Totals">
    <div class="card"><div class="label">Impressions</div><div class="value" id="total-impressions">{{f"{report['totals']['impressions']:,}"}}</div></div>
    <div class="card"><div class="label">Clicks</div><div class="value" id="total-clicks">{{f"{report['totals']['clicks']:,}"}}</div></div>
    <div class="card"><div class="label">CTR</div><div class="value" id="total-ctr">{{"–" if report['totals']['ctr'] is None else f"{report['totals']['ctr'] * 100:.2f} %"}}</div></div>
  </section>
  <h2>Per day</h2>
  % for title, svg in charts:
  <div class="panel"><h3>{{title}}</h3>{{!svg}}</div>
  % end
  <h2>Top ads</h2>
  % if ads:
  <table id="top-ads">
    <thead><tr><th class="left">#</th><th class="left">Ad</th><th>Impressions</th><th>Clicks</th><th>CTR</th>
      <th>Share of impressions</th><th>Impressions per day</th></tr></thead>
    <tbody>
    % for ad in ads:
      <tr data-ad-row="{{ad['ad_id']}}"><td class="left">{{ad['rank']}}</td><td class="left">{{ad['ad_id']}}</td>
        <td>{{ad['impressions']}}</td><td>{{ad['clicks']}}</td><td>{{ad['ctr']}}</td>
        <td>{{ad['share']}} %<span class="share"><span style="width: {{ad['share']}}%"></span></span></td>
        <td>{{!ad['trend']}}</td></tr>
    % end
    </tbody>
  </table>
  % else:
  <p class="note">No ad has been counted in this range.</p>
  % end
% end
  <p class="note"><a href="/">Demo page</a> · <a href="{{json}}">This report as JSON</a></p>
</main>
</body>
</html>
