// The gateway's live status page (GET /status): this markup and its script (GET /status.js), which
// polls GET /status.json every second and redraws. Everything is served by the gateway itself: no
// CDN, no framework, no inline script (the page's Content-Security-Policy allows only its own).
// Every value from the registry is set as text, never as markup: node names come from whoever
// registered them.

/** The page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shop gateway: status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  h2 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; }
  th { font-weight: 600; background: #f0f0f0; }
  td.number { text-align: right; font-variant-numeric: tabular-nums; }
  .badge { display: inline-block; padding: .05rem .5rem; border-radius: .6rem; font-size: .85rem; }
  .ready, .serving, .connected { background: #d9f2dd; color: #14532d; }
  .not-ready, .gone, .unreachable { background: #fde2e1; color: #7f1d1d; }
  .draining, .connecting, .idle { background: #fff1cc; color: #713f12; }
  tr.node-gone td { color: #8a8a8a; }
  #meta, #reasons, .empty { color: #555; }
  #error { color: #b91c1c; }
</style>
</head>
<body>
<h1>shop gateway <span id="readiness" class="badge">loading</span></h1>
<div id="meta">waiting for the first update</div>
<div id="reasons"></div>
<div id="error" role="alert"></div>
<h2>Nodes</h2>
<table>
  <thead><tr><th>name</th><th>state</th><th>from this gateway</th><th>address</th><th>age</th><th>id</th></tr></thead>
  <tbody id="nodes"></tbody>
</table>
<h2>Routes</h2>
<table>
  <thead><tr><th>route</th><th>serving</th><th>draining</th><th>requests/s</th><th>errors/s</th><th>errors</th></tr></thead>
  <tbody id="routes"></tbody>
</table>
<p id="window" class="empty"></p>
<script src="status.js"></script>
</body>
</html>
`;

/** The page's script: plain browser JavaScript, run as it is. */
export const STATUS_PAGE_SCRIPT = `'use strict';
(function () {
  var REFRESH_MS = 1000;
  // A gateway that takes the request and never answers (frozen, or the network dropped) would hold
  // an unbounded fetch for ever, and the page with it, showing its last update as if current.
  var TIMEOUT_MS = 5000;
  var lastUpdate = 0;

  function cell(row, text, className) {
    var td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function badge(td, text, className) {
    var span = document.createElement('span');
    span.className = 'badge ' + className;
    span.textContent = text;
    td.appendChild(span);
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return '';
    if (seconds < 120) return seconds + ' s';
    if (seconds < 7200) return Math.round(seconds / 60) + ' min';
    return Math.round(seconds / 3600) + ' h';
  }

  // Why this gateway cannot reach an instance, by the kind /status.json gives (UnreachableReason).
  var UNREACHABLE_REASONS = {
    'attempts-fail': 'its connection attempts fail (refused, reset, or no route to its host)',
    'handshake-fails': "its TLS handshake fails (the gateway's log says why)",
    'connections-dropped':
      "its connections are dropped just after the TLS handshake (it may not accept this gateway's certificate)",
    unresolved: "its host name resolves to no address on the gateway's host",
    'no-answer': 'its connection attempts get no answer (packets dropped, or a peer that never speaks gRPC)',
    'went-silent': 'its connection went silent',
    'check-unanswered': "it did not answer a health check after a call's deadline",
    untrusted: "its certificate's CA was taken out of the gateway's CA file"
  };

  // Whether this gateway can reach a listed node: in words, the badge's colour only repeating them.
  function reachCell(row, node) {
    var td = cell(row, '');
    if (node.state === 'gone') return;
    var reach = node.connected ? 'connected'
      : node.unreachableSeconds != null ? 'unreachable'
      : node.connecting ? 'connecting'
      : node.idle ? 'idle' : 'none';
    row.dataset.reach = reach;
    if (reach === 'none') {
      td.textContent = 'no connection: this gateway routes nothing to it';
      return;
    }
    badge(td, reach, reach);
    var detail = '';
    if (reach === 'connecting') detail = ': no connection yet (calls wait for it)';
    else if (reach === 'idle') detail = ': no connection now (the next call makes one)';
    else if (reach === 'unreachable') {
      row.dataset.unreachable = 'true';
      if (node.outOfReach) row.dataset.outOfReach = 'true';
      var reason = Object.prototype.hasOwnProperty.call(UNREACHABLE_REASONS, node.unreachableReason)
        ? UNREACHABLE_REASONS[node.unreachableReason] : '';
      detail = ' for ' + age(node.unreachableSeconds) + (reason ? ': ' + reason : '') + (node.outOfReach
        ? '; out of reach, given no call (a route it alone serves is answered 503 at once)'
        : '; passed over');
    }
    if (detail) td.appendChild(document.createTextNode(detail));
  }

  function emptyRow(body, columns, text) {
    var row = document.createElement('tr');
    var td = cell(row, text, 'empty');
    td.colSpan = columns;
    body.appendChild(row);
  }

  function render(status) {
    var readiness = document.getElementById('readiness');
    readiness.textContent = status.readiness.ready ? 'ready' : 'not ready';
    readiness.className = 'badge ' + (status.readiness.ready ? 'ready' : 'not-ready');
    document.getElementById('meta').textContent =
      (status.registered ? 'registered with the distributor' : 'not registered with the distributor') +
      ' · node list revision ' + (status.revision === null ? 'none yet' : status.revision) +
      ' · updated ' + new Date(status.now).toLocaleTimeString() +
      (Math.abs(status.distributorClockOffsetMs || 0) > 60000
        ? " · the distributor's clock is " + Math.round(Math.abs(status.distributorClockOffsetMs) / 1000) + ' s ' +
          (status.distributorClockOffsetMs > 0 ? 'ahead of' : 'behind') + " this gateway's (ages are by the distributor's)"
        : '');
    document.getElementById('reasons').textContent = status.readiness.reasons.join('; ');

    var nodes = document.getElementById('nodes');
    nodes.replaceChildren();
    status.nodes.forEach(function (node) {
      var row = document.createElement('tr');
      row.className = 'node-' + node.state;
      row.dataset.nodeId = node.id;
      row.dataset.state = node.state;
      cell(row, node.name);
      var stateCell = cell(row, '');
      badge(stateCell, node.state === 'gone' ? 'gone ' + age(Math.round((Date.parse(status.now) - Date.parse(node.goneAt)) / 1000)) + ' ago' : node.state, node.state);
      if (node.kept) {
        row.dataset.kept = 'true';
        stateCell.appendChild(document.createTextNode(' kept: not registered again since the distributor restarted'));
      }
      reachCell(row, node);
      cell(row, node.address);
      cell(row, age(node.ageSeconds), 'number');
      cell(row, node.id);
      nodes.appendChild(row);
    });
    if (status.nodes.length === 0) emptyRow(nodes, 6, 'no node registered');

    var routes = document.getElementById('routes');
    routes.replaceChildren();
    status.routes.forEach(function (route) {
      var row = document.createElement('tr');
      row.dataset.route = route.method + ' ' + route.path;
      cell(row, route.method + ' ' + route.path);
      if (route.outOfReach) row.dataset.outOfReach = 'true';
      cell(row, route.serving.length
        ? route.serving.join(', ') + (route.outOfReach ? ' (out of reach: answered 503 at once)' : '')
        : route.listed ? 'none' : 'not routed');
      cell(row, route.draining.join(', '));
      cell(row, status.metrics ? route.rate.requestsPerSecond.toFixed(2) : 'off', 'number');
      cell(row, status.metrics ? route.rate.errorsPerSecond.toFixed(2) : 'off', 'number');
      cell(row, status.metrics && route.rate.requests > 0
        ? (100 * route.rate.errors / route.rate.requests).toFixed(1) + ' %' : '', 'number');
      routes.appendChild(row);
    });
    if (status.routes.length === 0) emptyRow(routes, 6, 'no route known');
    document.getElementById('window').textContent = status.metrics
      ? 'rates over the last ' + status.windowSeconds + ' s; errors are 5xx answers and lists cut short after their 200; requests for these pages are not counted'
      : 'rates are off (METRICS=off)';
  }

  function refresh() {
    var controller = new AbortController();
    var timer = setTimeout(function () {
      controller.abort();
    }, TIMEOUT_MS);
    fetch('status.json', { cache: 'no-store', signal: controller.signal })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (status) {
        lastUpdate = Date.now();
        document.getElementById('error').textContent = '';
        render(status);
      })
      .catch(function (error) {
        // What the page shows is no longer known to be true: not "ready" in green.
        var readiness = document.getElementById('readiness');
        readiness.textContent = 'unknown';
        readiness.className = 'badge not-ready';
        document.getElementById('error').textContent =
          'cannot reach the gateway (' +
          (controller.signal.aborted ? 'no answer in ' + TIMEOUT_MS / 1000 + ' s' : error.message) + ')' +
          (lastUpdate ? '; last update ' + Math.round((Date.now() - lastUpdate) / 1000) + ' s ago' : '');
      })
      .finally(function () {
        clearTimeout(timer);
        setTimeout(refresh, REFRESH_MS);
      });
  }

  refresh();
})();
`;
