// weir dashboard: polls the public API every 2 s (only while the tab is
// visible) and renders routes, rollouts, traffic, drift, models, plugins
// and alerts. Everything shown here is one GET away for curl users too.

import { fill, h } from './dom.js';
import { lineChart } from './charts.js';

const POLL_MS = 2000;
const SERIES_WINDOW = '15m';
const DRIFT_HISTORY = 450; // points per feature: 15 min at one per 2 s
const DRIFT_KEEP_MS = 15 * 60e3;
const DRIFT_KEY = 'weir.driftHistory';
const TOKEN_KEY = 'weir.adminToken';
const PALETTE = ['#2563eb', '#f59e0b', '#10b981', '#8b5cf6', '#ef4444', '#0891b2', '#db2777'];

const state = {
  loaded: false, // false until the first poll answered: "loading", not "no routes"
  routes: [],
  rollouts: {}, // route -> status, or null when it never had one
  selected: null,
  series: null, // timeseries of the selected route
  stats: null, // last minute's stats of the selected route
  models: [],
  plugins: [],
  alerts: [],
  drift: {}, // model -> GET /v1/drift response
  driftHistory: loadDriftHistory(), // "model@version/feature" -> [{t, v}]
  actionError: null, // {route, message}
  notice: null,
  busy: null, // "route/action" while a rollout action is in flight
};

// ---- API -----------------------------------------------------------------

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, { method = 'GET', token } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, { method, headers, cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, `cannot reach the gateway (${err.message})`);
  }
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const msg = body && typeof body.error === 'string' ? body.error : text.trim() || resp.statusText;
    throw new APIError(resp.status, `${method} ${path}: ${resp.status} ${msg}`);
  }
  return body;
}

// orNull turns a 404 into null: a route that never had a rollout, a model
// with no drift results. Other errors still count.
async function orNull(p) {
  try {
    return await p;
  } catch (err) {
    if (err instanceof APIError && err.status === 404) return null;
    throw err;
  }
}

const enc = encodeURIComponent;

// ---- formatting -----------------------------------------------------------

const nf = new Intl.NumberFormat();
function fmtNum(n) {
  return n === null || n === undefined ? '–' : nf.format(n);
}
function fmtRate(x) {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  if (x < 1) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return nf.format(Math.round(x));
}
function fmtPct(x) {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0%';
  const p = x * 100;
  if (p < 0.1) return p.toFixed(3) + '%';
  if (p < 10) return p.toFixed(2).replace(/\.?0+$/, '') + '%';
  return p.toFixed(1).replace(/\.0$/, '') + '%';
}
function fmtMs(x) {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0 ms';
  if (x < 1) return x.toFixed(2) + ' ms';
  if (x < 10) return x.toFixed(1) + ' ms';
  if (x < 1000) return Math.round(x) + ' ms';
  return (x / 1000).toFixed(2) + ' s';
}
function fmtScore(x) {
  if (!Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  if (Math.abs(x) < 0.001) return '<0.001';
  return x.toFixed(3);
}
function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}
function ago(ts) {
  if (!ts) return '';
  const d = (Date.now() - new Date(ts).getTime()) / 1000;
  if (!Number.isFinite(d)) return '';
  if (d < 5) return 'just now';
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}
// fmtDur shortens a Go duration string: "1h0m0s" -> "1h", "5m0s" -> "5m".
function fmtDur(d) {
  return String(d).replace(/([hm])0m0s$|([hm])0s$/, '$1$2').replace(/^(.+[hm])0m(\d)/, '$1$2');
}
function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}
const STATE_LABEL = { progressing: 'progressing', paused: 'paused', promoted: 'promoted', rolled_back: 'rolled back' };

function badge(st, text) {
  return h('span', { class: `badge badge-${st}`, 'data-state': st }, text ?? STATE_LABEL[st] ?? st);
}

// Colors follow variant names, so stable and canary keep theirs across
// routes and redraws.
const colorOf = (() => {
  const fixed = { stable: PALETTE[0], canary: PALETTE[1] };
  let next = 2;
  return (name) => (fixed[name] ??= PALETTE[next++ % PALETTE.length]);
})();

// ---- polling ----------------------------------------------------------------

let timer = null;
let inflight = null;

async function poll() {
  clearTimeout(timer);
  timer = null;
  if (inflight) return inflight;
  inflight = (async () => {
    try {
      // Readiness is a status code, not JSON: 503 while the gateway (or its
      // NATS connection) is not ready.
      const ready = fetch('/v2/health/ready', { cache: 'no-store' }).then((r) => r.ok, () => false);
      await refresh();
      setHealth(true, await ready);
      showBanner(null);
    } catch (err) {
      setHealth(false, false, err.message);
      showBanner(err.message);
    } finally {
      inflight = null;
      if (!document.hidden) timer = setTimeout(poll, POLL_MS);
    }
  })();
  return inflight;
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else {
    poll();
  }
});

async function refresh() {
  const [routes, models, plugins, alerts] = await Promise.all([
    api('/v1/routes'),
    api('/v1/models'),
    api('/v1/plugins'),
    api('/v1/alerts?n=20'),
  ]);
  state.routes = (routes.routes ?? []).slice().sort((a, b) => a.name.localeCompare(b.name));
  state.models = models.models ?? [];
  state.plugins = plugins.plugins ?? [];
  state.alerts = alerts.alerts ?? [];
  state.selected = pickRoute();

  const rollouts = await Promise.all(state.routes.map((r) => orNull(api(`/v1/routes/${enc(r.name)}/rollout`))));
  state.rollouts = Object.fromEntries(state.routes.map((r, i) => [r.name, rollouts[i]]));

  const sel = state.selected;
  const driftModels = [...new Set(state.routes.flatMap(routeModels))];
  const [series, stats, ...drifts] = await Promise.all([
    sel ? orNull(api(`/v1/routes/${enc(sel)}/timeseries?since=${SERIES_WINDOW}`)) : null,
    sel ? orNull(api(`/v1/routes/${enc(sel)}/stats?window=1m`)) : null,
    ...driftModels.map((m) => orNull(api(`/v1/drift/${enc(m)}`))),
  ]);
  state.series = series;
  state.stats = stats;
  state.drift = Object.fromEntries(driftModels.map((m, i) => [m, drifts[i]]));
  state.loaded = true;
  recordDrift();
  render();
  document.getElementById('updated').textContent = `updated ${clock(Date.now())}`;
}

function routeModels(r) {
  const ms = (r.variants ?? []).map((v) => v.model);
  if (r.shadow?.model) ms.push(r.shadow.model);
  return ms;
}

// pickRoute keeps the user's choice (in the URL hash), else the demo route
// "fraud", else the first route.
function pickRoute() {
  const names = state.routes.map((r) => r.name);
  const want = decodeURIComponent(location.hash.replace(/^#\/?(route\/)?/, ''));
  if (names.includes(want)) return want;
  if (names.includes(state.selected)) return state.selected;
  if (names.includes('fraud')) return 'fraud';
  return names[0] ?? null;
}

window.addEventListener('hashchange', () => {
  state.selected = pickRoute();
  state.series = null;
  state.stats = null;
  render();
  poll();
});

// recordDrift appends each feature's current score to a history kept in
// this browser's local storage: the API serves current values only, so a
// page opened later still draws what earlier pages saw (up to 15 min).
function recordDrift() {
  const now = Date.now();
  for (const [model, resp] of Object.entries(state.drift)) {
    for (const r of resp?.results ?? []) {
      if (!Number.isFinite(r.value) || !judged(r)) continue;
      const key = `${model}@${r.version}/${r.feature}`;
      const hist = (state.driftHistory[key] ??= []);
      hist.push({ t: now, v: r.value });
      if (hist.length > DRIFT_HISTORY) hist.splice(0, hist.length - DRIFT_HISTORY);
    }
  }
  pruneDrift(state.driftHistory, now);
  try {
    localStorage.setItem(DRIFT_KEY, JSON.stringify(state.driftHistory));
  } catch {
    // Storage full or disabled: the history lives as long as the page.
  }
}

function loadDriftHistory() {
  let hist = {};
  try {
    const v = JSON.parse(localStorage.getItem(DRIFT_KEY) ?? '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) hist = v;
  } catch {
    // Unreadable: start afresh.
  }
  return pruneDrift(hist, Date.now());
}

// pruneDrift drops points older than DRIFT_KEEP_MS (and malformed ones),
// and features left without points.
function pruneDrift(hist, now) {
  for (const [key, pts] of Object.entries(hist)) {
    const keep = Array.isArray(pts) ? pts.filter((p) => p && Number.isFinite(p.t) && Number.isFinite(p.v) && p.t > now - DRIFT_KEEP_MS) : [];
    if (keep.length) hist[key] = keep.slice(-DRIFT_HISTORY);
    else delete hist[key];
  }
  return hist;
}

// judged says whether a drift result has a value: a feature that is warming
// up or collecting its reference reports 0, which is not "no drift".
function judged(r) {
  return !r.state || r.state === 'ok' || r.state === 'drifted';
}

// driftStateText is what an unjudged feature shows instead of a score.
function driftStateText(r) {
  const p = r.progress;
  if (r.state === 'warming_up') return p ? `warming up (${fmtNum(p.have)} of ${fmtNum(p.need)})` : 'warming up';
  if (r.state === 'collecting_reference') return p ? `collecting reference (${fmtNum(p.have)} of ${fmtNum(p.need)})` : 'collecting reference';
  return r.state;
}

// ---- header: health, token, banner ---------------------------------------

async function loadServer() {
  try {
    const meta = await api('/v2');
    document.getElementById('server-version').textContent = meta?.version ? `v${String(meta.version).replace(/^v/, '')}` : '';
  } catch {
    // The health indicator reports reachability; the version is cosmetic.
  }
}

// setHealth shows whether the API answers (reachable) and whether the
// gateway says it is ready to serve.
function setHealth(reachable, ready, why) {
  const el = document.getElementById('health');
  el.dataset.state = !reachable ? 'down' : ready ? 'ok' : 'warn';
  document.getElementById('health-text').textContent = !reachable ? 'unreachable' : ready ? 'ready' : 'not ready';
  el.title = !reachable ? why : ready ? 'GET /v2/health/ready: 200 · polling every 2 s' : 'GET /v2/health/ready: not ready';
}

function showBanner(msg) {
  const el = document.getElementById('banner');
  el.hidden = !msg;
  el.textContent = msg ?? '';
}

const token = {
  // sessionStorage: the token lives as long as the tab, not on disk.
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? '',
  set: (v) => (v ? sessionStorage.setItem(TOKEN_KEY, v) : sessionStorage.removeItem(TOKEN_KEY)),
};

function setupToken() {
  const panel = document.getElementById('token-panel');
  const toggle = document.getElementById('token-toggle');
  const input = document.getElementById('token-input');
  const open = (v) => {
    panel.hidden = !v;
    toggle.setAttribute('aria-expanded', String(v));
    if (v) input.focus();
  };
  const label = () => {
    const has = token.get() !== '';
    document.getElementById('token-state').textContent = has ? 'Admin token ✓' : 'Admin token';
    toggle.classList.toggle('has-token', has);
    input.value = token.get();
  };
  toggle.addEventListener('click', () => open(panel.hidden));
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token.set(input.value.trim());
    label();
    open(false);
    state.actionError = null;
    render();
  });
  document.getElementById('token-clear').addEventListener('click', () => {
    token.set('');
    label();
  });
  label();
  if (!token.get()) panel.dataset.prompt = 'true';
  return open;
}
let openToken = () => {};

// ---- rollout actions --------------------------------------------------------

async function rolloutAction(route, action) {
  const t = token.get();
  if (!t) {
    state.actionError = { route, message: 'Paste the admin token first (see weir-data/admin-token), then try again.' };
    openToken(true);
    render();
    return;
  }
  state.busy = `${route}/${action}`;
  state.actionError = null;
  render();
  try {
    const st = await api(`/v1/routes/${enc(route)}/rollout/${action}`, { method: 'POST', token: t });
    state.rollouts[route] = st;
    state.notice = { route, message: `${action} done: rollout is ${STATE_LABEL[st?.state] ?? st?.state}` };
  } catch (err) {
    let msg = err.message;
    if (err.status === 401 || err.status === 403) msg += ' — check the admin token (weir-data/admin-token).';
    state.actionError = { route, message: msg };
  } finally {
    state.busy = null;
    render();
    poll();
  }
}

// ---- rendering --------------------------------------------------------------

const rendered = {}; // section -> JSON of what it last drew

// once redraws a section only when its inputs changed, so the page does not
// flicker and a button under the pointer stays the same element.
function once(key, inputs, draw) {
  const sig = JSON.stringify(inputs);
  if (rendered[key] === sig) return;
  rendered[key] = sig;
  draw();
}

function render() {
  once('routes', [state.loaded, state.routes, state.rollouts, state.selected], renderRouteList);
  renderDetail();
  once('drift', [state.drift, state.driftHistory, state.selected], renderDrift);
  once('models', state.models, renderModels);
  once('plugins', state.plugins, renderPlugins);
  once('alerts', [state.alerts, Math.floor(Date.now() / 30000)], renderAlerts);
}

function splitBar(variants, big) {
  const total = variants.reduce((a, v) => a + (v.weight || 0), 0) || 1;
  return h('div', { class: 'split' + (big ? ' split-big' : ''), role: 'img',
    'aria-label': variants.map((v) => `${v.name} ${v.weight}%`).join(', ') },
  variants.filter((v) => v.weight > 0).map((v) =>
    h('span', { class: 'split-seg', style: `width:${(v.weight / total) * 100}%;--c:${colorOf(v.name)}`, title: `${v.name}: ${v.weight}%` },
      big && v.weight >= 15 ? `${v.name} ${v.weight}%` : '')));
}

function renderRouteList() {
  document.getElementById('routes-count').textContent = state.routes.length ? String(state.routes.length) : '';
  const list = document.getElementById('route-list');
  if (!state.loaded) {
    fill(list, h('p', { class: 'muted small', id: 'routes-loading' }, 'Loading routes…'));
    return;
  }
  if (!state.routes.length) {
    fill(list, h('p', { class: 'muted small' }, 'No routes yet. Create one with ', h('code', {}, 'weir route set NAME -f route.json'), '.'));
    return;
  }
  fill(list, ...state.routes.map((r) => {
    const ro = state.rollouts[r.name];
    const active = ro && (ro.state === 'progressing' || ro.state === 'paused');
    return h('a', { class: 'route-item' + (r.name === state.selected ? ' selected' : ''), href: `#/route/${enc(r.name)}`, 'data-route': r.name },
      h('div', { class: 'route-item-head' },
        h('span', { class: 'route-name' }, r.name),
        ro ? badge(ro.state, active ? `${STATE_LABEL[ro.state]} · ${ro.weight}%` : undefined) : null),
      splitBar(r.variants ?? [], false),
      h('div', { class: 'route-variants' }, (r.variants ?? []).map((v) =>
        h('span', {}, h('span', { class: 'dot', style: `--c:${colorOf(v.name)}` }), `${v.name} ${v.weight}%`))));
  }));
}

function renderDetail() {
  const el = document.getElementById('detail');
  const r = state.routes.find((x) => x.name === state.selected);
  if (!r && !state.loaded) {
    once('detail', ['loading'], () => fill(el, h('div', { class: 'empty', id: 'detail-loading' },
      h('h1', {}, 'Loading…'), h('p', { class: 'muted' }, 'Asking the gateway for its routes, rollouts and traffic.'))));
    return;
  }
  if (!r) {
    once('detail', ['empty', state.routes.length], () => fill(el, h('div', { class: 'empty' },
      h('h1', {}, 'No routes yet'),
      h('p', {}, 'Push a model and create a route; it appears here with its traffic split, rollout and live charts.'),
      h('pre', {}, 'weir model push fraud 1 fraud.onnx\nweir route set fraud -f route.json'))));
    return;
  }
  // The skeleton is built once per route; its parts redraw on their own.
  once('detail', ['route', r.name], () => {
    fill(el,
      h('div', { class: 'route-head', id: 'route-head' }),
      h('div', { class: 'kpis', id: 'kpis' }),
      h('div', { class: 'detail-grid' },
        h('div', { class: 'stack' },
          h('div', { class: 'card', id: 'split-card' }),
          chartCard('chart-rps', 'Requests / s', 'per variant, 10 s buckets')),
        h('div', { class: 'card', id: 'rollout-card' })),
      h('div', { class: 'charts' },
        chartCard('chart-err', 'Error rate'),
        chartCard('chart-lat', 'Latency', 'p99 solid · p50 dashed')));
    for (const k of ['head', 'kpis', 'split', 'rollout', 'charts']) delete rendered[k];
  });
  const ro = state.rollouts[r.name];
  once('head', [r, Math.floor(Date.now() / 10000)], () => renderRouteHead(r));
  once('kpis', state.stats, () => renderKPIs(r));
  once('split', [r, state.stats], () => renderSplit(r));
  once('rollout', [ro, state.busy, state.actionError, state.notice, token.get() !== '', Math.floor(Date.now() / 10000)], () => renderRollout(r, ro));
  once('charts', [state.series, ro?.spec], () => renderCharts(r, ro));
}

function chartCard(id, title, sub) {
  return h('div', { class: 'card chart-card' },
    h('div', { class: 'card-head' }, h('h3', {}, title), sub ? h('span', { class: 'sub' }, sub) : null),
    h('div', { class: 'chart', id }));
}

function renderRouteHead(r) {
  const chips = [];
  if (r.sticky?.header) chips.push(`sticky by header ${r.sticky.header}`);
  if (r.sticky?.field) chips.push(`sticky by field ${r.sticky.field}`);
  if (r.shadow?.model) chips.push(`shadow ${r.shadow.model}@${r.shadow.version || 'latest'} · ${r.shadow.percent}%`);
  const chain = [...(r.plugins ?? []).map((p) => ({ ...p, kind: 'pre' })), ...(r.postprocess ?? []).map((p) => ({ ...p, kind: 'post' }))];
  fill(document.getElementById('route-head'),
    h('div', { class: 'route-title' },
      h('h1', { id: 'route-title' }, r.name),
      h('span', { class: 'muted' }, `revision ${r.revision ?? '–'}`, r.updated_at ? ` · updated ${ago(r.updated_at)}` : '')),
    h('div', { class: 'pipeline' },
      h('span', { class: 'pipe-step io' }, 'request'),
      chain.filter((p) => p.kind === 'pre').map((p) => [h('span', { class: 'arrow' }, '→'), h('span', { class: 'pipe-step plugin', title: 'plugin' }, `${p.name}${p.version ? '@' + p.version : ''}`)]),
      h('span', { class: 'arrow' }, '→'),
      h('span', { class: 'pipe-step model' }, (r.variants ?? []).map((v) => `${v.model}@${v.version || 'latest'}`).filter((x, i, a) => a.indexOf(x) === i).join(' | ')),
      chain.filter((p) => p.kind === 'post').map((p) => [h('span', { class: 'arrow' }, '→'), h('span', { class: 'pipe-step plugin', title: 'post-processing plugin' }, `${p.name}${p.version ? '@' + p.version : ''}`)]),
      h('span', { class: 'arrow' }, '→'),
      h('span', { class: 'pipe-step io' }, 'response')),
    chips.length ? h('div', { class: 'chips' }, chips.map((c) => h('span', { class: 'chip' }, c))) : null);
}

// totals sums the last minute over the split's variants: not shadow copies,
// nor pinned calls (a versioned OIP call bypasses the split).
function totals() {
  const vs = Object.entries(state.stats?.variants ?? {}).filter(([, v]) => !v.shadow && !v.pinned);
  const req = vs.reduce((a, [, v]) => a + v.requests, 0);
  const errs = vs.reduce((a, [, v]) => a + v.errors, 0);
  // Callers' own 4xx answers are counted apart, not as errors.
  const client = vs.reduce((a, [, v]) => a + (v.client_errors ?? 0), 0);
  const worst = vs.reduce((a, [n, v]) => (v.requests && v.p99_ms > (a?.v.p99_ms ?? -1) ? { n, v } : a), null);
  const p50 = vs.reduce((a, [, v]) => a + v.p50_ms * v.requests, 0) / (req || 1);
  return { req, errs, client, worst, p50 };
}

function renderKPIs() {
  const t = totals();
  const kpi = (label, value, note, cls) => h('div', { class: 'kpi ' + (cls ?? '') }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), h('div', { class: 'kpi-note' }, note));
  fill(document.getElementById('kpis'),
    kpi('Throughput', `${fmtRate(t.req / 60)} req/s`, `${fmtNum(t.req)} requests, last minute`),
    kpi('Error rate', t.req > t.client ? fmtPct(t.errs / (t.req - t.client)) : '–',
      `${fmtNum(t.errs)} errors${t.client ? `, ${fmtNum(t.client)} client 4xx apart` : ''}, last minute`, t.errs ? 'warn' : ''),
    kpi('Latency p50', t.req ? fmtMs(t.p50) : '–', 'request-weighted'),
    kpi('Latency p99', t.worst ? fmtMs(t.worst.v.p99_ms) : '–', t.worst ? `worst variant: ${t.worst.n}` : 'no traffic in the last minute'));
}

function renderSplit(r) {
  const stats = state.stats?.variants ?? {};
  const rows = (r.variants ?? []).map((v) => {
    const s = stats[v.name];
    return h('tr', {},
      h('td', {}, h('span', { class: 'dot', style: `--c:${colorOf(v.name)}` }), h('b', {}, v.name)),
      h('td', { class: 'mono' }, `${v.model}@${v.version || 'latest'}`),
      h('td', { class: 'num' }, h('b', {}, `${v.weight}%`)),
      h('td', { class: 'num' }, s ? fmtRate(s.requests / 60) : '–'),
      h('td', { class: 'num' + (s?.errors ? ' bad' : ''), title: s?.client_errors ? `${fmtNum(s.client_errors)} client errors (4xx) counted apart` : undefined }, s ? fmtPct(s.error_rate) : '–'),
      h('td', { class: 'num' }, s?.requests ? fmtMs(s.p50_ms) : '–'),
      h('td', { class: 'num' }, s?.requests ? fmtMs(s.p99_ms) : '–'));
  });
  const shadow = r.shadow?.model ? Object.entries(stats).filter(([, v]) => v.shadow) : [];
  for (const [name, s] of shadow) {
    rows.push(h('tr', { class: 'shadow-row' },
      h('td', {}, h('span', { class: 'dot hollow', style: `--c:${colorOf(name)}` }), name, ' ', h('span', { class: 'chip small' }, 'shadow')),
      h('td', { class: 'mono' }, `${r.shadow.model}@${r.shadow.version || 'latest'}`),
      h('td', { class: 'num' }, `${r.shadow.percent}% copy`),
      h('td', { class: 'num' }, fmtRate(s.requests / 60)),
      h('td', { class: 'num' }, fmtPct(s.error_rate)),
      h('td', { class: 'num' }, s.requests ? fmtMs(s.p50_ms) : '–'),
      h('td', { class: 'num' }, s.requests ? fmtMs(s.p99_ms) : '–')));
  }
  // Pinned calls named their version: counted apart, outside the split.
  for (const [name, s] of Object.entries(stats).filter(([, v]) => v.pinned)) {
    rows.push(h('tr', { class: 'pinned-row', 'data-series': name },
      h('td', {}, h('span', { class: 'dot hollow', style: `--c:${colorOf(name)}` }), 'pinned', ' ', h('span', { class: 'chip small' }, 'outside split')),
      h('td', { class: 'mono' }, name.replace(/^pinned:/, '')),
      h('td', { class: 'num' }, '–'),
      h('td', { class: 'num' }, fmtRate(s.requests / 60)),
      h('td', { class: 'num' + (s.errors ? ' bad' : '') }, fmtPct(s.error_rate)),
      h('td', { class: 'num' }, s.requests ? fmtMs(s.p50_ms) : '–'),
      h('td', { class: 'num' }, s.requests ? fmtMs(s.p99_ms) : '–')));
  }
  fill(document.getElementById('split-card'),
    h('div', { class: 'card-head' }, h('h2', {}, 'Traffic split'), h('span', { class: 'sub' }, 'live weights · last minute')),
    splitBar(r.variants ?? [], true),
    h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Variant', 'Model', 'Weight', 'req/s', 'Errors', 'p50', 'p99'].map((c, i) => h('th', { class: i > 1 ? 'num' : '' }, c)))),
      h('tbody', {}, rows)));
}

function renderRollout(r, ro) {
  const card = document.getElementById('rollout-card');
  if (!ro) {
    fill(card,
      h('div', { class: 'card-head' }, h('h2', {}, 'Rollout')),
      h('p', { class: 'muted', id: 'rollout-none' }, 'No rollout on this route yet. Start a canary with'),
      h('pre', {}, `weir canary start ${r.name} --to MODEL@VERSION --steps 5,25,50,100 --interval 30s`));
    return;
  }
  const spec = ro.spec ?? {};
  const steps = spec.steps ?? [];
  const active = ro.state === 'progressing' || ro.state === 'paused';
  const canaryName = spec.variant || 'canary';
  const stepLabel = ro.state === 'promoted' ? `all ${steps.length} steps done`
    : ro.state === 'rolled_back' ? `stopped at step ${ro.step + 1} of ${steps.length}`
      : `step ${ro.step + 1} of ${steps.length}`;

  const progress = h('ol', { class: 'steps' }, steps.map((w, i) => {
    let cls = 'todo';
    if (ro.state === 'promoted' || i < ro.step) cls = 'done';
    else if (i === ro.step) cls = ro.state === 'rolled_back' ? 'failed' : 'current';
    return h('li', { class: cls, title: `step ${i + 1}: ${w}%` }, h('span', { class: 'bar' }), h('span', { class: 'lbl' }, `${w}%`));
  }));

  // Before the first analysis the status has no figures: show the live
  // last-minute stats of the same variants instead, and say so.
  const analyzed = Object.keys(ro.variants ?? {}).length > 0;
  const live = state.stats?.variants ?? {};
  const vs = analyzed ? ro.variants : {
    stable: live[ro.stable_variant || 'stable'],
    canary: live[canaryName],
  };
  // limit is a maximum the canary must stay under; the requests row shows
  // the minimum the analysis waits for instead.
  const limitRow = (label, key, fmt, limit, limitText) => h('tr', {},
    h('th', {}, label),
    h('td', { class: 'num' }, vs.stable ? fmt(vs.stable[key]) : '–'),
    h('td', { class: 'num' + (limit && vs.canary && vs.canary[key] > limit ? ' bad' : '') }, vs.canary ? fmt(vs.canary[key]) : '–'),
    h('td', { class: 'num muted' }, limitText ?? (limit ? fmt(limit) : '—')));
  const comparison = h('table', { class: 'table compare' },
    h('thead', {}, h('tr', {}, h('th', { class: 'window' }, analyzed ? 'analysis window' : 'live, last minute'), h('th', { class: 'num' }, ro.stable_variant || 'stable'), h('th', { class: 'num' }, canaryName), h('th', { class: 'num' }, 'limit'))),
    h('tbody', {},
      limitRow('Requests', 'requests', fmtNum, null, spec.min_requests ? `min ${fmtNum(spec.min_requests)}` : undefined),
      limitRow('Error rate', 'error_rate', fmtPct, spec.max_error_rate),
      limitRow('p99', 'p99_ms', fmtMs, spec.max_p99_ms),
      h('tr', {}, h('th', {}, 'Drift'), h('td', { class: 'num muted' }, ''),
        h('td', { class: 'num' + (ro.drift != null && spec.max_drift && ro.drift > spec.max_drift ? ' bad' : '') }, ro.drift != null ? fmtScore(ro.drift) : 'unknown'),
        h('td', { class: 'num muted' }, spec.max_drift ? fmtScore(spec.max_drift) : '—'))));

  const busy = state.busy?.startsWith(`${r.name}/`);
  const btn = (action, label, cls, enabled) => h('button', {
    type: 'button', class: `btn ${cls}`, 'data-action': action, disabled: !enabled || busy,
    onclick: () => rolloutAction(r.name, action),
  }, state.busy === `${r.name}/${action}` ? `${label}…` : label);

  const err = state.actionError?.route === r.name ? state.actionError.message : null;
  const note = state.notice?.route === r.name ? state.notice.message : null;
  const history = (ro.history ?? []).slice(-8).reverse();

  fill(card,
    h('div', { class: 'card-head' },
      h('h2', {}, 'Rollout'),
      h('span', { class: 'sub' }, `→ ${spec.model}@${spec.version} as “${canaryName}”`),
      h('span', { id: 'rollout-state', class: 'push', 'data-state': ro.state }, badge(ro.state))),
    h('div', { class: 'rollout-main' },
      h('div', { class: 'big' },
        h('div', { class: 'big-value', id: 'rollout-weight' }, `${ro.weight}%`),
        h('div', { class: 'big-label' }, `${canaryName} weight`)),
      h('div', { class: 'rollout-progress' },
        h('div', { class: 'step-label', id: 'rollout-step' }, stepLabel,
          active && spec.interval ? h('span', { class: 'muted' }, ` · ${fmtDur(spec.interval)} per step`) : null,
          ro.step_started_at && active ? h('span', { class: 'muted' }, ` · step began ${ago(ro.step_started_at)}`) : null),
        progress)),
    h('div', { class: 'decision', id: 'rollout-decision' },
      h('span', { class: 'decision-kind' }, ro.decision || '—'),
      h('span', { class: 'decision-reason' }, ro.reason || ''),
      ro.waiting ? h('span', { class: 'chip small' }, `waiting for ${fmtNum(spec.min_requests)} canary requests`) : null),
    comparison,
    active ? h('div', { class: 'actions' },
      btn('promote', 'Promote', 'ok', true),
      ro.state === 'paused' ? btn('resume', 'Resume', 'neutral', true) : btn('pause', 'Pause', 'neutral', true),
      btn('abort', 'Abort', 'danger', true),
      token.get() ? null : h('span', { class: 'muted small' }, 'needs the ', h('a', { href: '#', onclick: (ev) => { ev.preventDefault(); openToken(true); } }, 'admin token'))) : null,
    err ? h('div', { class: 'error', role: 'alert', id: 'action-error' }, err) : null,
    note && !err ? h('div', { class: 'notice', id: 'action-notice' }, note) : null,
    history.length ? h('details', { class: 'history', open: true },
      h('summary', {}, `History (${(ro.history ?? []).length})`),
      h('table', { class: 'table small' }, h('tbody', {}, history.map((x) => h('tr', {},
        h('td', { class: 'muted mono' }, clock(x.ts)),
        h('td', {}, x.from ? `${STATE_LABEL[x.from] ?? x.from} → ` : '', h('b', {}, STATE_LABEL[x.to] ?? x.to)),
        h('td', { class: 'num' }, `${x.weight}%`),
        h('td', { class: 'reason' }, x.reason))))))
      : null);
}

function renderCharts(r, ro) {
  // The charts show the split: pinned calls are in the split table only.
  const ts = (state.series?.variants ?? []).filter((vs) => !vs.pinned);
  const now = Date.now();
  const x0 = domainStart(ts.flatMap((vs) => vs.points.filter((p) => p.requests).map((p) => Date.parse(p.t))), now, 15 * 60e3, 2 * 60e3);
  const mk = (pick, opt = {}) => ts.map((vs) => ({
    name: vs.shadow ? `${vs.variant} (shadow)` : vs.variant,
    color: colorOf(vs.variant),
    dash: vs.shadow ? '4 3' : undefined,
    area: opt.area && !vs.shadow,
    points: vs.points.map((p) => ({ t: Date.parse(p.t), v: pick(p) })),
  }));
  const limits = ro && (ro.state === 'progressing' || ro.state === 'paused') ? ro.spec ?? {} : {};
  // The rollout's limits judge the canary only: draw them in its color,
  // named after it, and only while it has a series on the chart.
  const canary = limits.variant ?? 'canary';
  const hasCanary = ts.some((vs) => vs.variant === canary && !vs.shadow);
  const limit = (v, label) => (v && hasCanary ? [{ v, label: `${canary}: ${label}`, color: colorOf(canary), series: canary }] : []);
  lineChart(document.getElementById('chart-rps'), {
    series: mk((p) => p.rps, { area: true }), x0, x1: now, fmt: fmtRate, minMax: 1,
    empty: 'no traffic in the last 15 minutes',
  });
  lineChart(document.getElementById('chart-err'), {
    series: mk((p) => (p.requests ? p.error_rate : null)), x0, x1: now, fmt: fmtPct, minMax: 0.01,
    thresholds: limit(limits.max_error_rate, `max ${fmtPct(limits.max_error_rate)}`),
    empty: 'no traffic in the last 15 minutes',
  });
  const lat = [];
  for (const vs of ts) {
    const pts = (f) => vs.points.map((p) => ({ t: Date.parse(p.t), v: p.requests ? p[f] : null }));
    const name = vs.shadow ? `${vs.variant} (shadow)` : vs.variant;
    lat.push({ name: `${name} p99`, color: colorOf(vs.variant), points: pts('p99_ms') });
    lat.push({ name: `${name} p50`, color: colorOf(vs.variant), dash: '2 3', points: pts('p50_ms') });
  }
  lineChart(document.getElementById('chart-lat'), {
    series: lat, x0, x1: now, fmt: fmtMs, minMax: 1,
    thresholds: limit(limits.max_p99_ms, `max p99 ${fmtMs(limits.max_p99_ms)}`),
    empty: 'no traffic in the last 15 minutes',
  });
}

// domainStart starts a time axis ending at now: at most max long, at least
// min, and no earlier than shortly before the first data, so a route that
// just got traffic does not show one spike at the right edge.
function domainStart(times, now, max, min) {
  const first = times.length ? Math.min(...times) : now;
  return Math.max(now - max, Math.min(now - min, first - min / 4));
}

window.addEventListener('resize', () => {
  delete rendered.charts;
  delete rendered.drift;
  render();
});

function renderDrift() {
  const el = document.getElementById('drift');
  const sel = state.routes.find((r) => r.name === state.selected);
  // The selected route's models first, then the other routes' models.
  const models = Object.keys(state.drift).sort((a, b) => {
    const sa = sel && routeModels(sel).includes(a) ? 0 : 1;
    const sb = sel && routeModels(sel).includes(b) ? 0 : 1;
    return sa - sb || a.localeCompare(b);
  });
  document.getElementById('drift-sub').textContent = models.length
    ? `models on routes: ${models.join(', ')} · the API serves current scores only: history is what this browser saw in the last 15 min`
    : '';
  if (!models.length) {
    fill(el, h('p', { class: 'muted' }, 'No routed models yet.'));
    return;
  }
  fill(el, ...models.map((m) => {
    const resp = state.drift[m];
    const results = resp?.results ?? [];
    if (!results.length) {
      return h('div', { class: 'drift-model' }, h('h3', {}, m),
        h('p', { class: 'muted small' }, 'No drift results yet: drift needs a reference (uploaded with ', h('code', {}, `weir model push ${m} VERSION FILE --reference data.csv`), ', or inferred from the first events) and traffic.'));
    }
    const drifted = results.filter((x) => x.drifted).length;
    const waiting = results.filter((x) => !judged(x)).length;
    const wrap = h('div', { class: 'drift-model' },
      h('h3', {}, m, ' ', drifted ? badge('drifted', `${drifted} drifted`)
        : waiting === results.length ? badge('warming', 'warming up')
          : badge('ok', waiting ? `no drift · ${waiting} warming up` : 'no drift')));
    for (const v of byActivity(results)) {
      wrap.append(h('div', { class: 'drift-version', 'data-version': v.version },
        h('h4', {}, `${m}@${v.version}`, h('span', { class: 'muted small' }, v.events ? ` · ${fmtNum(v.events)} recent events` : ' · no traffic yet')),
        h('div', { class: 'drift-grid' }, v.results.map((x) => driftCell(m, x)))));
    }
    return wrap;
  }));
}

// byActivity groups drift results by version, versions that are judged
// first, then those with some events, then idle ones: a version nobody
// calls must not push the live ones below the fold. Within a rank the one
// with more events comes first, then the newer.
function byActivity(results) {
  const groups = new Map();
  for (const x of results) {
    const g = groups.get(x.version) ?? { version: x.version, results: [], events: 0, judged: false };
    g.results.push(x);
    // Every event counts once in each feature: the busiest one is the
    // version's count.
    g.events = Math.max(g.events, x.window?.count || x.progress?.have || 0);
    g.judged ||= judged(x);
    groups.set(x.version, g);
  }
  const rank = (g) => (g.judged ? 0 : g.events ? 1 : 2);
  return [...groups.values()].sort((a, b) => rank(a) - rank(b) || b.events - a.events
    || (b.version ?? '').localeCompare(a.version ?? '', undefined, { numeric: true }));
}

// driftCell is one feature's card: its full name (wrapped, never cut), its
// score or state, and its history.
function driftCell(m, x) {
  const key = `${m}@${x.version}/${x.feature}`;
  const chart = h('div', { class: 'chart small' });
  const hist = state.driftHistory[key] ?? [];
  // Charts need their container's width, so draw after insertion.
  queueMicrotask(() => lineChart(chart, {
    series: [{ name: x.metric, color: x.drifted ? '#dc2626' : '#0f766e', area: true, points: hist }],
    thresholds: [{ v: x.threshold, label: `threshold ${fmtScore(x.threshold)}` }],
    fmt: fmtScore, height: 120, minMax: x.threshold,
    x0: domainStart(hist.map((p) => p.t), Date.now(), DRIFT_KEEP_MS, 60e3), x1: Date.now(),
    empty: judged(x) ? 'collecting…' : driftStateText(x),
  }));
  return h('div', { class: 'drift-cell' + (x.drifted ? ' is-drifted' : ''), 'data-feature': x.feature, 'data-version': x.version },
    h('div', { class: 'drift-head' },
      h('span', { class: 'drift-feature', title: x.feature }, x.feature),
      judged(x)
        ? h('span', { class: 'push drift-value' + (x.drifted ? ' bad' : ''), title: `${x.metric} ${x.value}` }, fmtScore(x.value))
        : h('span', { class: 'push drift-value muted small', 'data-state': x.state }, driftStateText(x))),
    chart,
    h('div', { class: 'muted small' }, x.kind ? `${x.kind} · ` : '', `threshold ${fmtScore(x.threshold)} · window ${fmtNum(x.window?.count)} events`, x.reference ? ` · reference ${x.reference}` : ''));
}

function versionChips(list) {
  return h('div', { class: 'chips' }, list.map((v) => h('span', {
    class: `vchip vchip-${v.state}`,
    title: v.error ? `${v.version}: ${v.error}` : `${v.version}: ${v.state}`,
  }, v.version, v.latest ? h('span', { class: 'latest' }, 'latest') : null)));
}

function renderModels() {
  const el = document.getElementById('models');
  if (!state.models.length) {
    fill(el, h('p', { class: 'muted' }, 'No models. Push one with ', h('code', {}, 'weir model push NAME VERSION FILE'), '.'));
    return;
  }
  fill(el, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Model'), h('th', {}, 'Versions'), h('th', { class: 'num' }, 'Features'), h('th', { class: 'num' }, 'Size'))),
    h('tbody', {}, state.models.map((m) => {
      const vs = m.versions ?? [];
      const latest = vs.find((v) => v.version === m.latest) ?? vs.at(-1);
      const failed = vs.filter((v) => v.state === 'failed');
      return h('tr', { 'data-model': m.name },
        h('td', {}, h('b', {}, m.name), failed.length ? h('div', { class: 'error small' }, failed.map((f) => `${f.version}: ${f.error || 'failed'}`).join('; ')) : null),
        h('td', {}, versionChips(vs.map((v) => ({ ...v, latest: v.version === m.latest })))),
        h('td', { class: 'num', title: (latest?.features ?? []).join(', ') }, latest?.features?.length ? String(latest.features.length) : '–',
          latest?.reference ? h('span', { class: 'chip small', title: 'has a drift reference' }, 'ref') : null),
        h('td', { class: 'num' }, latest ? fmtBytes(latest.size) : '–'));
    }))));
}

function renderPlugins() {
  const el = document.getElementById('plugins');
  if (!state.plugins.length) {
    fill(el, h('p', { class: 'muted' }, 'No plugins. Push one with ', h('code', {}, 'weir plugin push NAME VERSION FILE'), '.'));
    return;
  }
  fill(el, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Plugin'), h('th', {}, 'Versions'), h('th', { class: 'num' }, 'Size'))),
    h('tbody', {}, state.plugins.map((p) => {
      const details = p.details ?? (p.versions ?? []).map((v) => ({ version: v }));
      const latest = details.find((d) => d.version === p.latest) ?? details.at(-1);
      return h('tr', {},
        h('td', {}, h('b', {}, p.name)),
        h('td', {}, versionChips(details.map((d) => ({ version: d.version, state: d.error ? 'failed' : 'ready', error: d.error, latest: d.version === p.latest })))),
        h('td', { class: 'num', title: latest?.memory_pages ? `${latest.memory_pages} memory pages` : '' }, latest?.size ? fmtBytes(latest.size) : '–'));
    }))));
}

function renderAlerts() {
  const el = document.getElementById('alerts');
  if (!state.alerts.length) {
    fill(el, h('p', { class: 'muted', id: 'alerts-none' }, 'No drift alerts. ', h('span', { class: 'small' }, 'Alerts also go to NATS ', h('code', {}, 'weir.alerts.drift.<model>'), '.')));
    return;
  }
  const list = state.alerts.slice().sort((a, b) => Date.parse(b.ts) - Date.parse(a.ts));
  fill(el, h('ul', { class: 'alerts' }, list.map((a) => h('li', {},
    badge(a.state),
    h('span', { class: 'alert-what' }, h('b', {}, `${a.model}@${a.version}`), ` · ${a.feature}`),
    h('span', { class: 'alert-val' }, `${a.metric} ${fmtScore(a.value)} / ${fmtScore(a.threshold)}`),
    h('span', { class: 'muted small', title: new Date(a.ts).toLocaleString() }, ago(a.ts))))));
}

// ---- start ------------------------------------------------------------------

openToken = setupToken();
loadServer();
poll();
