// The Heimdall dashboard: plain browser JavaScript, no build step. Every call carries the admin token as a bearer
// header; the token lives in this tab's sessionStorage only. Data is written into the page with textContent, never
// as HTML. Controls call the admin API itself (/api/plugins/...), and show its error text when it refuses.
'use strict';

(() => {
  const TOKEN_KEY = 'heimdall.admin.token';
  const REFRESH_MS = 2000;
  const $ = (selector) => document.querySelector(selector);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let view = 'plugins';
  let timer;
  let selectedRequest;
  let busy = false;
  const charts = new Map();

  // --- talking to the gateway ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, url, body) {
    if (!token) throw new ApiError(401, 'no token');
    const headers = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
    const text = await res.text();
    let json;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const error = json && json.error ? json.error : { message: `${res.status} ${res.statusText}` };
      if (res.status === 401) signOut(error.message);
      throw new ApiError(res.status, error.message, error.code);
    }
    return json;
  }

  function say(text, kind = 'error') {
    const box = $('#message');
    box.textContent = text;
    box.className = `message ${kind}`;
    box.hidden = false;
  }

  function clearMessage() {
    $('#message').hidden = true;
  }

  // --- signing in and out -------------------------------------------------------------------------------------

  function signOut(reason) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    $('#views').hidden = true;
    $('#tabs').hidden = true;
    $('#signout').hidden = true;
    $('#live').hidden = true;
    $('#login').hidden = false;
    const error = $('#login-error');
    error.hidden = !reason;
    error.textContent = reason || '';
  }

  async function signIn() {
    try {
      await api('GET', '/dashboard/api/info');
    } catch (err) {
      if (err.status !== 401) signOut(err.message);
      return;
    }
    $('#login').hidden = true;
    $('#views').hidden = false;
    $('#tabs').hidden = false;
    $('#signout').hidden = false;
    $('#live').hidden = false;
    show(location.hash.slice(1) || 'plugins');
  }

  $('#login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('#token').value.trim();
    $('#token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    signIn();
  });
  $('#signout').addEventListener('click', () => signOut());

  // --- views --------------------------------------------------------------------------------------------------

  function show(name) {
    if (!['plugins', 'requests', 'providers'].includes(name)) name = 'plugins';
    view = name;
    for (const tab of document.querySelectorAll('.tab')) tab.classList.toggle('active', tab.dataset.view === name);
    for (const section of document.querySelectorAll('.view')) section.hidden = section.id !== `view-${name}`;
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    refresh();
  }

  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => show(tab.dataset.view));

  async function refresh() {
    clearTimeout(timer);
    if (!token) return;
    try {
      if (view === 'plugins') await Promise.all([renderPlugins(), renderSeries()]);
      else if (view === 'requests') await renderRequests();
      else await renderProviders();
      const live = $('#live');
      live.textContent = `live · ${new Date().toLocaleTimeString()}`;
      live.classList.remove('stale');
    } catch (err) {
      if (err.status === 401) return;
      $('#live').textContent = `not updating: ${err.message}`;
      $('#live').classList.add('stale');
    }
    if (token) timer = setTimeout(refresh, REFRESH_MS);
  }

  // --- small DOM helpers --------------------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) if (child !== undefined && child !== null) node.append(child);
    return node;
  }

  const fmtMs = (ms) => (ms === null || ms === undefined ? '–' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`);
  const sum = (values) => values.reduce((a, b) => a + b, 0);
  const lastValue = (values) => {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  };

  // --- plugins ------------------------------------------------------------------------------------------------

  let pluginNames = [];
  let shownPlugins = '';

  async function renderPlugins() {
    const { plugins } = await api('GET', '/dashboard/api/plugins');
    // Rebuilt only when something changed, so a button is not replaced under the pointer.
    const seen = JSON.stringify(plugins);
    if (seen === shownPlugins) return;
    shownPlugins = seen;
    pluginNames = plugins.map((p) => p.name);
    const body = $('#plugins-table tbody');
    body.replaceChildren(...plugins.map((p, i) => pluginRow(p, i, plugins.length)));
  }

  function pluginRow(p, i, count) {
    const trouble = p.state === 'quarantined' || p.state === 'failed' || (p.quarantine && p.quarantine.recent_failures > 0);
    const state = el('span', { class: `state state-${p.state}`, text: p.state === 'failed' ? 'failed to load' : p.state });
    const why = p.state === 'quarantined' && p.quarantine && p.quarantine.last_failure
      ? el('div', { class: 'why', text: `${p.quarantine.last_failure.hook}: ${p.quarantine.last_failure.message}` })
      : p.state === 'failed' && p.last_errors.length > 0
        ? el('div', { class: 'why', text: p.last_errors[p.last_errors.length - 1].message })
        : p.quarantine && p.quarantine.recent_failures > 0
          ? el('div', { class: 'why', text: `${p.quarantine.recent_failures} recent failure${p.quarantine.recent_failures > 1 ? 's' : ''}${p.quarantine.last_failure ? ` (${p.quarantine.last_failure.hook}: ${p.quarantine.last_failure.message})` : ''}` })
          : null;
    const controls = el('td', { class: 'controls' });
    const button = (label, action, title) => el('button', { type: 'button', class: 'small', title, 'data-action': label, onclick: () => control(p.name, action) }, label);
    if (p.state === 'disabled') controls.append(button('enable', () => api('POST', `/api/plugins/${enc(p.name)}/enable`)));
    else controls.append(button('reload', () => api('POST', `/api/plugins/${enc(p.name)}/reload`), 'load the file again'), button('disable', () => api('POST', `/api/plugins/${enc(p.name)}/disable`)));
    if (p.state === 'quarantined') controls.append(button('lift quarantine', () => api('POST', `/api/plugins/${enc(p.name)}/unquarantine`)));
    controls.append(
      el('button', { type: 'button', class: 'small', title: 'earlier in the pipeline', 'data-action': 'up', disabled: i === 0, onclick: () => control(p.name, () => move(p.name, -1)) }, '↑'),
      el('button', { type: 'button', class: 'small', title: 'later in the pipeline', 'data-action': 'down', disabled: i === count - 1, onclick: () => control(p.name, () => move(p.name, 1)) }, '↓'),
    );
    return el(
      'tr',
      { class: trouble ? 'trouble' : '', 'data-plugin': p.name, 'data-state': p.state },
      el('td', { text: String(p.position) }),
      el('td', { class: 'name' }, el('strong', { text: p.name }), el('div', { class: 'file', text: p.file })),
      el('td', { text: p.language || '–' }),
      el('td', { text: p.abi_version || '–' }),
      el('td', { text: p.mode || '–' }),
      el('td', { class: 'hooks', text: p.hooks.join(', ') || '–' }),
      el('td', {}, state, why),
      el('td', { class: 'hash', title: p.sha256 || '', 'data-sha256': p.sha256 || '', text: p.sha256 ? p.sha256.slice(0, 12) : '–' }),
      controls,
    );
  }

  const enc = encodeURIComponent;

  function move(name, by) {
    const order = [...pluginNames];
    const at = order.indexOf(name);
    const to = at + by;
    if (at < 0 || to < 0 || to >= order.length) return Promise.resolve();
    [order[at], order[to]] = [order[to], order[at]];
    return api('PUT', '/api/plugins/order', { order });
  }

  async function control(name, action) {
    if (busy) return;
    busy = true;
    clearMessage();
    try {
      await action();
      say(`${name}: done`, 'ok');
    } catch (err) {
      if (err.status !== 401) say(`${name}: ${err.message}${err.code ? ` (${err.code})` : ''}`);
    } finally {
      busy = false;
    }
    refresh();
  }

  $('#add-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const path = $('#add-path').value.trim();
    if (busy || !path) return;
    busy = true;
    clearMessage();
    try {
      const added = await api('POST', '/api/plugins', { path });
      say(`${added.name}: loaded`, 'ok');
      $('#add-path').value = '';
    } catch (err) {
      if (err.status !== 401) say(`${path}: ${err.message}${err.code ? ` (${err.code})` : ''}`);
    } finally {
      busy = false;
    }
    refresh();
  });

  // --- charts -------------------------------------------------------------------------------------------------

  const COLORS = { calls: '#3b6fd4', errors: '#d43b3b', short: '#d4a23b', p50: '#3ba55d', p99: '#8a3bd4' };

  /** `shorts`: hooks short-circuit, upstream calls don't (their series is left out). */
  function chartOptions(title, width, shorts) {
    return {
      title,
      width,
      height: 150,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, ms: { auto: true } },
      axes: [{ size: 30 }, { label: 'per 10 s', size: 40 }, { scale: 'ms', side: 1, label: 'ms', size: 45, grid: { show: false } }],
      series: [
        {},
        { label: 'calls', stroke: COLORS.calls, width: 1.5 },
        { label: 'errors', stroke: COLORS.errors, width: 1.5 },
        { label: 'short-circuits', stroke: COLORS.short, width: 1.5, show: shorts },
        { label: 'p50', stroke: COLORS.p50, scale: 'ms', width: 1, spanGaps: true, points: { show: true, size: 4, fill: COLORS.p50 } },
        { label: 'p99', stroke: COLORS.p99, scale: 'ms', width: 1, dash: [4, 2], spanGaps: true, points: { show: true, size: 4, fill: COLORS.p99 } },
      ],
    };
  }

  function chartData(s) {
    const xs = s.calls.map((_, i) => (s.start + i * s.interval_ms) / 1000);
    return [xs, s.calls, s.errors, s.short_circuits, s.p50_ms, s.p99_ms];
  }

  function drawChart(container, key, title, series, summaryText, trouble, shorts = true) {
    let entry = charts.get(key);
    if (entry === undefined || !entry.box.isConnected) {
      const box = el('div', { class: 'chart', 'data-key': key });
      const summary = el('div', { class: 'summary' });
      box.append(summary);
      container.append(box);
      const plot = new uPlot(chartOptions(title, 340, shorts), chartData(series), box);
      entry = { box, plot, summary };
      charts.set(key, entry);
    } else {
      entry.plot.setData(chartData(series));
    }
    entry.box.classList.toggle('trouble', trouble);
    entry.summary.textContent = summaryText;
    return entry.box;
  }

  async function renderSeries() {
    const { hooks } = await api('GET', '/dashboard/api/series');
    const container = $('#charts');
    // Pipeline order, then hook order.
    const order = (name) => (pluginNames.includes(name) ? pluginNames.indexOf(name) : 1e6);
    hooks.sort((a, b) => order(a.plugin) - order(b.plugin));
    const keep = new Set();
    for (const s of hooks) {
      const key = `${s.plugin}/${s.hook}`;
      keep.add(key);
      const calls = sum(s.calls);
      const errors = sum(s.errors);
      const shorts = sum(s.short_circuits);
      const text = `${calls} calls · ${errors} errors · ${shorts} short-circuits · p99 ${fmtMs(lastValue(s.p99_ms))}`;
      const box = drawChart(container, key, `${s.plugin} · ${s.hook}`, s, text, errors > 0);
      box.dataset.plugin = s.plugin;
      box.dataset.hook = s.hook;
      box.dataset.calls = String(calls);
      box.dataset.errors = String(errors);
      box.dataset.shortCircuits = String(shorts);
    }
    for (const [key, entry] of charts) {
      if (!key.startsWith('upstream:') && !keep.has(key)) {
        entry.plot.destroy();
        entry.box.remove();
        charts.delete(key);
      }
    }
  }

  // --- requests -----------------------------------------------------------------------------------------------

  async function renderRequests() {
    const [info, { requests }] = await Promise.all([api('GET', '/dashboard/api/info'), api('GET', '/dashboard/api/requests?limit=100')]);
    $('#requests-hint').textContent = info.recording === 'off'
      ? 'the inspector is off (admin.dashboard.requests: 0)'
      : `the last ${info.inspector_size} are kept, ${info.recording === 'always' ? 'always recorded' : 'recorded while this dashboard is open (and 15 minutes after)'}; ` +
        `bodies ${info.bodies ? 'shown (log.bodies is on, redacted as in the logs)' : 'not kept (log.bodies is off)'}`;
    const body = $('#requests-table tbody');
    body.replaceChildren(
      ...requests.map((r) => {
        const notes = [];
        if (r.short_circuit) notes.push(el('span', { class: 'badge short', text: `short-circuit: ${r.short_circuit}` }));
        if (r.hook_errors > 0) notes.push(el('span', { class: 'badge error', text: `${r.hook_errors} hook error${r.hook_errors > 1 ? 's' : ''}` }));
        if (r.attempts > 1) notes.push(el('span', { class: 'badge', text: `${r.attempts - 1} fallback${r.attempts > 2 ? 's' : ''}` }));
        if (r.stream) notes.push(el('span', { class: 'badge', text: 'stream' }));
        return el(
          'tr',
          { class: `${r.id === selectedRequest ? 'selected' : ''} ${r.status !== null && r.status >= 400 ? 'failed' : ''}`, 'data-request': r.id, onclick: () => openRequest(r.id) },
          el('td', { text: new Date(r.at).toLocaleTimeString() }),
          el('td', { class: 'mono', text: r.id.length > 13 ? `${r.id.slice(0, 13)}…` : r.id, title: r.id }),
          el('td', { text: r.route }),
          el('td', { text: r.served_by || r.model || '–' }),
          el('td', { text: r.status === null ? 'running' : String(r.status) }),
          el('td', { text: r.ms === null ? '–' : r.ms.toFixed(1) }),
          el('td', {}, ...notes),
        );
      }),
    );
    if (selectedRequest && !requests.some((r) => r.id === selectedRequest)) {
      // It has left the ring (the inspector keeps the last requests only).
      selectedRequest = undefined;
      $('#request-detail').hidden = true;
    }
    if (selectedRequest) {
      await renderRequest(selectedRequest).catch((err) => {
        if (err.status !== 404) throw err;
        gone(err);
      });
    }
  }

  async function openRequest(id) {
    selectedRequest = id;
    for (const row of document.querySelectorAll('#requests-table tbody tr')) row.classList.toggle('selected', row.dataset.request === id);
    try {
      await renderRequest(id);
    } catch (err) {
      if (err.status === 404) gone(err);
      else if (err.status !== 401) say(err.message);
    }
  }

  /** The request has left the inspector's ring (404): say so where its timeline was. */
  function gone(err) {
    selectedRequest = undefined;
    for (const row of document.querySelectorAll('#requests-table tbody tr.selected')) row.classList.remove('selected');
    const detail = $('#request-detail');
    detail.replaceChildren(el('p', { class: 'gone', text: `${err.message}${err.code ? ` (${err.code})` : ''}` }));
    detail.hidden = false;
  }

  const HOOK_LABEL = { hook: (e) => e.hook, provider: () => 'provider call', chunks: () => 'StreamChunkHook' };

  async function renderRequest(id) {
    const r = await api('GET', `/dashboard/api/requests/${enc(id)}`);
    const detail = $('#request-detail');
    const total = Math.max(r.ms || 0, ...r.events.map((e) => e.at_ms + e.ms), 0.001);
    const rows = r.events.map((e) => {
      const label = HOOK_LABEL[e.kind](e);
      const who = e.kind === 'provider' ? e.model : e.plugin;
      const decision = e.kind === 'hook' ? e.decision : e.kind === 'provider' ? (e.outcome === 'ok' ? 'answered' : 'error') : `${e.calls} chunks`;
      const cls = e.kind === 'hook' ? e.decision : e.kind === 'provider' ? (e.outcome === 'ok' ? 'provider' : 'error') : e.errors > 0 ? 'error' : 'chunks';
      const bar = el('span', { class: `bar ${cls}` });
      bar.style.marginLeft = `${(100 * e.at_ms) / total}%`;
      bar.style.width = `${Math.max(0.5, (100 * e.ms) / total)}%`;
      let note = e.message || e.error || '';
      if (e.kind === 'chunks') note = [e.modified && `${e.modified} modified`, e.dropped && `${e.dropped} dropped`, e.errors && `${e.errors} errors`].filter(Boolean).join(', ');
      return el(
        'tr',
        { class: `step ${cls}`, 'data-kind': e.kind, 'data-hook': e.kind === 'hook' ? e.hook : undefined, 'data-plugin': who, 'data-decision': decision },
        el('td', { class: 'attempt', text: e.attempt > 1 ? `fallback ${e.attempt - 1}` : '' }),
        el('td', { text: label }),
        el('td', { class: 'who', text: who }),
        el('td', {}, el('span', { class: `badge ${cls}`, text: decision })),
        el('td', { class: 'num', text: fmtMs(e.ms) }),
        el('td', { class: 'timeline' }, bar),
        el('td', { class: 'note', text: note }),
      );
    });
    const head = el(
      'div',
      { class: 'detail-head' },
      el('h3', { class: 'mono', text: r.id }),
      el('div', {
        text: `${r.route} · ${r.served_by ? `served by ${r.served_by}` : r.short_circuit ? `answered by ${r.short_circuit}` : r.model || 'no model'} · ${r.status === null ? 'running' : `status ${r.status}`} · ${r.ms === null ? '' : `${r.ms.toFixed(1)} ms`}`,
      }),
    );
    const table = el('table', { class: 'timeline-table' }, el('tbody', {}, ...rows));
    const parts = [head, table];
    if (r.truncated) parts.push(el('p', { class: 'hint', text: 'later steps were left out (too many)' }));
    if (r.bodies) {
      for (const key of ['request', 'response', 'error']) {
        if (r.bodies[key] !== undefined) parts.push(el('h4', { text: key }), el('pre', { class: `body body-${key}`, text: r.bodies[key] }));
      }
    }
    detail.replaceChildren(...parts);
    detail.hidden = false;
  }

  // --- providers ----------------------------------------------------------------------------------------------

  async function renderProviders() {
    const { providers, upstream, keys } = await api('GET', '/dashboard/api/providers');
    $('#providers-table tbody').replaceChildren(
      ...providers.map((p) =>
        el('tr', { 'data-provider': p.name }, el('td', { text: p.name }), el('td', { text: p.type }), el('td', { text: p.models === null ? 'any model name' : p.models.join(', ') })),
      ),
    );
    $('#keys-table tbody').replaceChildren(
      ...(keys.length === 0 ? [el('tr', {}, el('td', { colspan: 5, class: 'hint', text: 'no provider calls its upstream with keys' }))] : keys.map(keyRow)),
    );
    tick();
    $('#upstream-table tbody').replaceChildren(
      ...upstream.map((u) => {
        const calls = sum(u.calls);
        const errors = sum(u.errors);
        return el(
          'tr',
          { class: errors > 0 ? 'trouble' : '', 'data-upstream': `${u.provider}/${u.model}` },
          el('td', { text: u.provider }),
          el('td', { text: u.model }),
          el('td', { class: 'num', text: String(calls) }),
          el('td', { class: 'num', text: String(errors) }),
          el('td', { class: 'num', text: calls === 0 ? '–' : `${((100 * errors) / calls).toFixed(1)}%` }),
          el('td', { class: 'num', text: fmtMs(lastValue(u.p50_ms)) }),
          el('td', { class: 'num', text: fmtMs(lastValue(u.p99_ms)) }),
        );
      }),
    );
    const container = $('#upstream-charts');
    for (const u of upstream) {
      const s = { ...u, short_circuits: u.calls.map(() => 0) };
      drawChart(container, `upstream:${u.provider}/${u.model}`, `${u.provider}/${u.model}`, s, `${sum(u.calls)} calls · ${sum(u.errors)} errors`, sum(u.errors) > 0, false);
    }
  }

  const WHY = { 429: 'rate limited (429)', 401: 'refused: unauthorized (401)', 403: 'refused: forbidden (403)' };

  /** A key, known by its place in its provider's list: the page never receives the key itself. */
  function keyRow(k) {
    const r = k.resting;
    const state = r
      ? el(
          'div',
          {},
          el('span', { class: 'state state-resting', text: `resting · ${r.status}` }),
          el(
            'div',
            { class: 'why' },
            `${WHY[r.status] || `status ${r.status}`}: `,
            // Counted down from the time this answer came, on this browser's clock (not compared with the gateway's).
            el('span', { class: 'countdown', 'data-ends': String(Date.now() + r.for_ms), text: fmtLeft(r.for_ms) }),
            ` more, until ${new Date(r.until).toLocaleTimeString()}${r.workers > 1 ? ` · in ${r.workers} workers` : ''}`,
          ),
        )
      : el('span', { class: 'state state-active', text: 'in use' });
    return el(
      'tr',
      { class: r ? 'trouble' : '', 'data-key': `${k.provider}#${k.position}`, 'data-resting': r ? String(r.status) : 'no' },
      el('td', { text: k.provider }),
      el('td', { text: `key ${k.position}` }),
      el('td', { class: 'num', text: String(k.weight) }),
      el('td', { text: k.models === null ? 'any' : k.models.join(', ') }),
      el('td', {}, state),
    );
  }

  function fmtLeft(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return s < 120 ? `${s} s` : s < 7200 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  /** The resting keys' countdowns, once a second between two reads of the data. */
  function tick() {
    for (const span of document.querySelectorAll('#keys-table .countdown')) span.textContent = fmtLeft(Number(span.dataset.ends) - Date.now());
  }
  setInterval(() => view === 'providers' && tick(), 1000);

  // --- start --------------------------------------------------------------------------------------------------

  window.addEventListener('hashchange', () => token && show(location.hash.slice(1)));
  if (token) signIn();
  else signOut();
})();
