// #/admin/sales : how the shop is selling (salesReport), drawn as inline SVG. Any order
// event asks for the report again, debounced, so the numbers follow the shop live.

import { query } from '../api.js';
import { fmt, money, statusPill } from '../format.js';
import { SALES_ORDER_EVENTS, SALES_REPORT } from '../queries.js';
import { errorState, fill, h, loadingState, nextId } from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Sales';

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
// The windows offered; each ends with the bucket now falls in, so new sales land inside it.
const RANGES = {
  '24h': { label: 'Last 24 hours', granularity: 'HOUR', buckets: 24 },
  '7d': { label: 'Last 7 days', granularity: 'DAY', buckets: 7 },
  '30d': { label: 'Last 30 days', granularity: 'DAY', buckets: 30 },
  '90d': { label: 'Last 90 days', granularity: 'DAY', buckets: 90 },
};
const REFRESH_DELAY_MS = 600; // a burst of events (checkout, pay, stock) costs one query
const SVG = 'http://www.w3.org/2000/svg';

function reportWindow(range, now = Date.now()) {
  const step = range.granularity === 'HOUR' ? HOUR : DAY;
  const end = Math.floor(now / step) * step + step; // buckets are UTC hours or days
  return { from: new Date(end - range.buckets * step).toISOString(), to: new Date(end).toISOString(),
    granularity: range.granularity };
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

function bucketLabel(iso, granularity) {
  const options = granularity === 'HOUR'
    ? { hour: 'numeric', timeZone: 'UTC' } : { month: 'short', day: 'numeric', timeZone: 'UTC' };
  return new Intl.DateTimeFormat(undefined, options).format(new Date(iso));
}

/** Bars scaled to the largest value (negative ones, net refunds, hang below the axis). The
 * SVG stretches to its box; labels are HTML so they stay readable on a phone. */
function barChart({ name, values, labels, format, colour = 'var(--accent)' }) {
  const width = 300;
  const height = 100;
  const top = Math.max(1, ...values);
  const bottom = Math.min(0, ...values);
  const scale = height / (top - bottom);
  const axis = top * scale;
  const slot = width / Math.max(values.length, 1);
  const bars = values.map((value, i) => {
    const size = Math.max(Math.abs(value) * scale, value ? 1 : 0);
    const bar = svg('rect', { x: i * slot + slot * 0.15, width: slot * 0.7, height: size,
      y: value >= 0 ? axis - size : axis, rx: Math.min(2, slot * 0.2),
      fill: value >= 0 ? colour : 'var(--danger)' });
    bar.append(svg('title', {}, `${labels[i]}: ${format(value)}`));
    return bar;
  });
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: 'none',
    role: 'img', 'aria-label': `${name}, ${labels[0]} to ${labels[labels.length - 1]}`,
    class: 'sales-plot' },
  svg('line', { x1: 0, x2: width, y1: axis, y2: axis, stroke: 'var(--border-strong)',
    'stroke-width': 1, 'vector-effect': 'non-scaling-stroke' }), ...bars);
  const middle = labels[Math.floor(labels.length / 2)];
  return h('figure', { class: 'sales-chart', dataset: { chart: name }, style: { margin: '0' } },
    h('div', { class: 'muted tabular', style: { fontSize: '12px' } }, `max ${format(top)}`),
    chart,
    h('div', { class: 'muted', style: { display: 'flex', justifyContent: 'space-between', fontSize: '12px' } },
      h('span', {}, labels[0]), h('span', {}, labels.length > 2 ? middle : ''), h('span', {}, labels[labels.length - 1])));
}

/** One horizontal bar per row, scaled to the first (rows come largest first). */
function rankBars(rows, value, text) {
  const top = Math.max(1, ...rows.map(value));
  return h('ol', { class: 'sales-rank', style: { listStyle: 'none', padding: '0', margin: '0' } },
    rows.map((row) => h('li', { style: { margin: '0 0 8px' }, dataset: { productId: row.product.id } },
      h('div', { style: { display: 'flex', justifyContent: 'space-between', gap: '8px' } },
        h('span', {}, row.product.name), h('strong', { class: 'tabular' }, text(row))),
      svg('svg', { viewBox: '0 0 100 4', preserveAspectRatio: 'none', 'aria-hidden': 'true',
        class: 'sales-rank-bar' },
      svg('rect', { x: 0, y: 0, height: 4, width: (100 * value(row)) / top, rx: 1, fill: 'var(--accent)' })))));
}

function kpi(key, label, value, detail) {
  return h('div', { class: 'card card-body', dataset: { kpi: key } },
    h('div', { class: 'muted', style: { fontSize: '12px' } }, label),
    h('div', { class: 'kpi-value tabular', style: { fontSize: '24px', fontWeight: '600' } }, value),
    detail ? h('div', { class: 'muted', style: { fontSize: '12px' } }, detail) : null);
}

function percent(rate) {
  return rate === null ? '—' : new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 1 }).format(rate);
}

function panel(heading, ...body) {
  return h('section', { class: 'card', 'aria-label': heading },
    h('div', { class: 'card-head' }, h('h2', { style: { fontSize: '15px', margin: '0' } }, heading)),
    h('div', { class: 'card-body' }, ...body));
}

function conversion(report) {
  const started = report.checkoutsStarted;
  const share = started ? report.checkoutsPaid / started : 0;
  return panel('Conversion',
    h('p', { dataset: { conversion: '' } },
      h('strong', { class: 'tabular' }, percent(report.conversionRate)),
      ` — ${report.checkoutsPaid} of ${started} checkouts paid`),
    svg('svg', { viewBox: '0 0 100 6', preserveAspectRatio: 'none', role: 'img',
      'aria-label': `${report.checkoutsPaid} of ${started} checkouts paid`, class: 'sales-conversion-bar' },
    svg('rect', { x: 0, y: 0, width: 100, height: 6, rx: 2, fill: 'var(--border)' }),
    svg('rect', { x: 0, y: 0, width: 100 * share, height: 6, rx: 2, fill: 'var(--accent)' })),
    report.ordersByStatus.length
      ? h('ul', { class: 'row', style: { listStyle: 'none', padding: '0', flexWrap: 'wrap', gap: '8px', marginTop: '12px' } },
        report.ordersByStatus.map((s) => h('li', { dataset: { status: s.status } }, statusPill(s.status), ` ${s.count}`)))
      : h('p', { class: 'muted' }, 'No checkouts in this window.'));
}

function runningOut(report) {
  if (!report.runningOut.length) return panel('Running out', h('p', { class: 'muted' }, 'Nothing sold in this window.'));
  const days = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  // A list, not a table: four columns do not fit a phone.
  return panel('Running out at this rate', h('ul', { style: { listStyle: 'none', padding: '0', margin: '0' } },
    report.runningOut.map((row) => h('li', { dataset: { productId: row.product.id }, style: { margin: '0 0 8px' } },
      h('div', { style: { display: 'flex', justifyContent: 'space-between', gap: '8px' } },
        h('span', {}, row.product.name),
        h('strong', { class: 'tabular', dataset: { daysLeft: '' } }, `${days.format(row.daysLeft)} days left`)),
      h('div', { class: 'muted tabular', style: { fontSize: '12px' } },
        `${row.available} available · ${days.format(row.unitsPerDay)} sold a day`)))));
}

function render(report) {
  const currency = report.revenue.currency;
  const labels = report.series.map((b) => bucketLabel(b.start, report.granularity));
  const noSales = h('p', { class: 'muted' }, 'No paid orders in this window.');
  return [
    h('div', { style: { display: 'grid', gap: '12px', gridTemplateColumns: 'repeat(auto-fit, minmax(150px, 1fr))' } },
      kpi('revenue', 'Revenue', fmt(report.revenue), `${fmt(report.refunds)} refunded`),
      kpi('orders-paid', 'Orders paid', String(report.ordersPaid)),
      kpi('average', 'Average order', report.averageOrderValue ? fmt(report.averageOrderValue) : '—'),
      kpi('conversion', 'Conversion', percent(report.conversionRate),
        `${report.checkoutsPaid} of ${report.checkoutsStarted} checkouts`)),
    h('div', { style: { display: 'grid', gap: '12px', gridTemplateColumns: 'repeat(auto-fit, minmax(280px, 1fr))' } },
      panel('Revenue', barChart({ name: 'revenue', values: report.series.map((b) => b.revenue.amount), labels,
        format: (cents) => money(cents, currency) })),
      panel('Orders paid', barChart({ name: 'orders', values: report.series.map((b) => b.ordersPaid), labels,
        format: String, colour: 'var(--text-3)' })),
      conversion(report),
      panel('Top products by revenue', report.topProductsByRevenue.length
        ? rankBars(report.topProductsByRevenue, (r) => r.revenue.amount, (r) => fmt(r.revenue)) : noSales),
      panel('Top products by units', report.topProductsByUnits.length
        ? rankBars(report.topProductsByUnits, (r) => r.units, (r) => `${r.units} sold`) : noSales.cloneNode(true)),
      runningOut(report)),
  ];
}

export function mount(root, { scope }) {
  const rangeId = nextId('range');
  const picker = h('select', { id: rangeId, class: 'input' },
    Object.entries(RANGES).map(([key, range]) => h('option', { value: key, selected: key === '7d' }, range.label)));
  const status = h('p', { class: 'sub', 'aria-live': 'polite' }, 'Revenue is paid minus refunded; times are UTC.');
  const body = h('div', { class: 'sales', 'aria-busy': 'true', style: { display: 'grid', gap: '12px' } },
    loadingState('Loading sales…'));
  fill(root, adminNav('/admin/sales'),
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Sales'), status),
      h('div', { class: 'actions' }, h('label', { for: rangeId, class: 'sr-only' }, 'Window'), picker)),
    body);

  let request = 0;
  async function load() {
    const mine = ++request;
    body.setAttribute('aria-busy', 'true');
    try {
      const data = await query(SALES_REPORT, reportWindow(RANGES[picker.value]));
      if (mine !== request || !scope.alive) return;
      fill(body, ...render(data.salesReport));
      body.dataset.updatedAt = new Date().toISOString();
    } catch (error) {
      if (mine !== request || !scope.alive) return;
      fill(body, errorState('the sales report', error, load));
    } finally {
      if (mine === request && scope.alive) body.setAttribute('aria-busy', 'false');
    }
  }

  let pending = null;
  function loadSoon() {
    if (pending !== null) return; // one query for a burst of events
    pending = scope.timeout(() => {
      pending = null;
      load();
    }, REFRESH_DELAY_MS);
  }

  scope.listen(picker, 'change', load);
  scope.subscribe(SALES_ORDER_EVENTS, {}, { next: loadSoon });
  load();
  return { refresh: load };
}
