// Small inline-SVG charts: time on x, one or more series on y, optional
// threshold lines, a legend with the latest values, and a hover readout.
// No dependencies: the dashboard must work with no network but the gateway.

import { fill, h } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const M = { left: 46, right: 14, top: 12, bottom: 24 };

function s(tag, attrs = {}, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const k of kids) el.append(k);
  return el;
}

// niceStep rounds a raw tick step up to 1, 2, 2.5 or 5 times a power of ten.
function niceStep(raw) {
  if (!(raw > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= raw) return m * p;
  }
  return 10 * p;
}

const TIME_STEPS = [10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3];

function timeLabel(ms, step) {
  const d = new Date(ms);
  const hh = String(d.getHours()).padStart(2, '0');
  const mm = String(d.getMinutes()).padStart(2, '0');
  if (step >= 60e3) return `${hh}:${mm}`;
  return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, '0')}`;
}

// lineChart renders into el (replacing its content).
//   series:     [{name, color, dash?, area?, points: [{t: ms, v: number|null}]}]
//   x0, x1:     the time domain in ms (defaults to the data's extent)
//   fmt:        formats a y value for axes, legend and hover
//   thresholds: [{v, label, color?, series?}] drawn as dashed lines (red, or
//   the color of the one series they apply to), included in the y domain
//   minMax:     the smallest y maximum (so an idle chart is not all noise)
//   empty:      the text shown when no series has a value
export function lineChart(el, opts) {
  const { fmt = String, thresholds = [], minMax = 0, height = 170 } = opts;
  const width = Math.max(el.clientWidth || 0, 260);
  // Points outside a given time domain are dropped, not drawn past the axes.
  const inside = (p) => (opts.x0 === undefined || p.t >= opts.x0) && (opts.x1 === undefined || p.t <= opts.x1);
  const series = (opts.series ?? []).map((sr) => ({ ...sr, points: sr.points.filter(inside) }));
  const all = series.flatMap((sr) => sr.points);
  const ts = all.map((p) => p.t);
  const x0 = opts.x0 ?? Math.min(...ts);
  const x1 = opts.x1 ?? Math.max(...ts);
  const vals = all.map((p) => p.v).filter((v) => v !== null && Number.isFinite(v));
  let yMax = Math.max(minMax, ...vals, ...thresholds.map((t) => t.v * 1.15));
  if (!(yMax > 0)) yMax = 1;
  const yStep = niceStep(yMax / 4);
  yMax = yStep * Math.ceil(yMax / yStep);

  const iw = width - M.left - M.right;
  const ih = height - M.top - M.bottom;
  const span = Math.max(x1 - x0, 1);
  const X = (t) => M.left + ((t - x0) / span) * iw;
  const Y = (v) => M.top + ih - (v / yMax) * ih;

  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, class: 'chart-svg', role: 'img' });
  const grid = s('g', { class: 'grid' });
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    grid.append(s('line', { x1: M.left, x2: width - M.right, y1: Y(v), y2: Y(v) }));
    grid.append(s('text', { x: M.left - 6, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const tStep = TIME_STEPS.find((st) => span / st <= Math.max(2, iw / 90)) ?? TIME_STEPS.at(-1);
  for (let t = Math.ceil(x0 / tStep) * tStep; t <= x1; t += tStep) {
    grid.append(s('line', { x1: X(t), x2: X(t), y1: M.top + ih, y2: M.top + ih + 4, class: 'tick' }));
    grid.append(s('text', { x: X(t), y: height - 6, 'text-anchor': 'middle' }, timeLabel(t, tStep)));
  }
  grid.append(s('line', { x1: M.left, x2: width - M.right, y1: M.top + ih, y2: M.top + ih, class: 'axis' }));
  svg.append(grid);

  for (const sr of series) {
    // Gaps (null) break the line rather than dropping to zero.
    const segs = [];
    let cur = [];
    for (const p of sr.points) {
      if (p.v === null || !Number.isFinite(p.v)) {
        if (cur.length) segs.push(cur);
        cur = [];
      } else cur.push(p);
    }
    if (cur.length) segs.push(cur);
    const g = s('g', { class: 'series' });
    for (const seg of segs) {
      const d = seg.map((p, i) => `${i ? 'L' : 'M'}${X(p.t).toFixed(1)},${Y(p.v).toFixed(1)}`).join('');
      if (sr.area && seg.length > 1) {
        const a = `${d}L${X(seg.at(-1).t).toFixed(1)},${Y(0)}L${X(seg[0].t).toFixed(1)},${Y(0)}Z`;
        g.append(s('path', { d: a, fill: sr.color, opacity: 0.1, stroke: 'none' }));
      }
      g.append(s('path', { d, fill: 'none', stroke: sr.color, 'stroke-width': 1.8, 'stroke-dasharray': sr.dash, 'stroke-linejoin': 'round' }));
      if (seg.length === 1) g.append(s('circle', { cx: X(seg[0].t), cy: Y(seg[0].v), r: 2.5, fill: sr.color }));
    }
    const last = segs.at(-1)?.at(-1);
    if (last) g.append(s('circle', { cx: X(last.t), cy: Y(last.v), r: 3, fill: sr.color, class: 'last' }));
    svg.append(g);
  }

  for (const th of thresholds) {
    const y = Y(th.v);
    // A limit that applies to one series (the canary's) is drawn in its
    // color and says so, so that another series above it reads as fine.
    const own = th.color ? { style: `stroke:${th.color};fill:${th.color}`, 'data-series': th.series ?? '' } : {};
    svg.append(s('line', { x1: M.left, x2: width - M.right, y1: y, y2: y, class: 'threshold', ...own }));
    svg.append(s('text', { x: width - M.right - 2, y: y - 4, 'text-anchor': 'end', class: 'threshold-label', ...own }, th.label ?? `limit ${fmt(th.v)}`));
  }

  const legend = h('div', { class: 'legend' }, series.map((sr) => {
    const last = [...sr.points].reverse().find((p) => p.v !== null && Number.isFinite(p.v));
    return h('span', { class: 'legend-item' },
      h('span', { class: 'swatch' + (sr.dash ? ' dashed' : ''), style: `--c:${sr.color}` }),
      h('span', { class: 'legend-name' }, sr.name),
      h('span', { class: 'legend-value' }, last ? fmt(last.v) : '–'));
  }));

  const readout = h('div', { class: 'readout', hidden: true });
  const cursor = s('line', { y1: M.top, y2: M.top + ih, class: 'cursor', visibility: 'hidden' });
  svg.append(cursor);
  const hit = s('rect', { x: M.left, y: M.top, width: iw, height: ih, fill: 'transparent' });
  svg.append(hit);
  const times = [...new Set(ts)].sort((a, b) => a - b);
  hit.addEventListener('mousemove', (ev) => {
    if (!times.length) return;
    const box = svg.getBoundingClientRect();
    const t = x0 + ((ev.clientX - box.left - M.left) / iw) * span;
    const near = times.reduce((a, b) => (Math.abs(b - t) < Math.abs(a - t) ? b : a));
    cursor.setAttribute('x1', X(near));
    cursor.setAttribute('x2', X(near));
    cursor.setAttribute('visibility', 'visible');
    fill(readout,
      h('div', { class: 'readout-time' }, new Date(near).toLocaleTimeString()),
      ...series.map((sr) => {
        const p = sr.points.find((q) => q.t === near);
        return h('div', {}, h('span', { class: 'swatch', style: `--c:${sr.color}` }), `${sr.name} `,
          h('b', {}, p && p.v !== null ? fmt(p.v) : '–'));
      }));
    readout.hidden = false;
    const left = X(near) + 12;
    readout.style.left = (left + 160 > width ? X(near) - 172 : left) + 'px';
  });
  hit.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    readout.hidden = true;
  });

  // The earliest point drawn, for tests and for anyone asking how far back
  // the chart reaches.
  const drawn = series.flatMap((sr) => sr.points.filter((p) => p.v !== null && Number.isFinite(p.v)).map((p) => p.t));
  if (drawn.length) el.dataset.first = String(Math.min(...drawn));
  else delete el.dataset.first;
  const body = h('div', { class: 'chart-body' }, svg, readout);
  if (!vals.length) body.append(h('div', { class: 'chart-empty' }, opts.empty ?? 'no data yet'));
  fill(el, legend, body);
}
