// #/admin/audit : the audit log, newest first, filtered by entity type, entity id and actor.

import { query } from '../api.js';
import { formatDateTime, money, when } from '../format.js';
import { AUDIT_LOG } from '../queries.js';
import { emptyState, errorState, fill, formField, h, loadingState, nextId } from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Audit log';
const TYPES = ['ORDER', 'PRODUCT', 'INVENTORY', 'USER'];

function actor(entry) {
  if (entry.actorKind === 'USER') return entry.actor ? entry.actor.email : 'User';
  if (entry.actorKind === 'PAYMENT_PROVIDER') return 'Stripe';
  return 'System';
}

function short(value, key = '', currency = 'usd') {
  if (value === null || value === undefined) return '∅';
  if (typeof value === 'number' && (key === 'total' || key.endsWith('price') || key.endsWith('cents'))) {
    return money(value, currency);
  }
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) return formatDateTime(value);
  if (typeof value === 'object') return Array.isArray(value) ? `[${value.length}]` : '{…}';
  const text = String(value);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** What changed, in a line: "status PAID → FULFILLED", "available 50 → 47 (damaged)". */
function changes(entry) {
  const before = entry.before || {};
  const after = entry.after || {};
  const currency = after.currency || before.currency || 'usd';
  if (!entry.before && entry.after) {
    const bits = ['status', 'name', 'sku', 'total', 'available', 'role', 'email']
      .filter((k) => k in after).map((k) => `${k} ${short(after[k], k, after.currency)}`);
    return h('span', {}, 'created', bits.length ? ` · ${bits.join(', ')}` : '');
  }
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((k) => k !== 'version' && typeof after[k] !== 'object' && JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  const notes = ['note', 'reason'].filter((k) => after[k] && !(k in before)).map((k) => after[k]);
  const parts = keys.filter((k) => !['note', 'reason', 'order_id'].includes(k))
    .map((k) => h('span', {}, `${k} `, h('code', {}, short(before[k], k, currency)), ' → ',
      h('code', {}, short(after[k], k, currency))));
  const joined = [];
  parts.forEach((part, i) => { if (i) joined.push(', '); joined.push(part); });
  if (after.order_id) joined.push(` · order #${after.order_id}`);
  if (notes.length) joined.push(` (${notes.join('; ')})`);
  return h('span', {}, joined.length ? joined : '—');
}

function entityLink(entry) {
  const label = `${entry.entityType.toLowerCase()} ${entry.entityId}`;
  if (entry.entityType === 'ORDER') return h('a', { href: `#/orders/${entry.entityId}` }, label);
  return h('span', {}, label);
}

export function mount(root, { scope, query: params }) {
  const filters = {
    entityType: params.get('entityType') || '',
    entityId: params.get('entityId') || '',
    actorId: params.get('actorId') || '',
  };
  let entries = [];
  let cursor = null;
  let hasNext = false;
  let total = 0;
  let request = 0;

  const typeId = nextId('type');
  const typeSelect = h('select', { id: typeId, class: 'input', name: 'entityType' },
    h('option', { value: '' }, 'Any'), TYPES.map((t) => h('option', { value: t }, t.charAt(0) + t.slice(1).toLowerCase())));
  typeSelect.value = filters.entityType;
  const entityField = formField({ label: 'Entity id', name: 'entityId', value: filters.entityId, attrs: { inputmode: 'numeric', placeholder: 'e.g. 12' } });
  const actorField = formField({ label: 'Actor (user id)', name: 'actorId', value: filters.actorId, attrs: { inputmode: 'numeric', placeholder: 'e.g. 2' } });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    h('div', { class: 'field' }, h('label', { for: typeId }, 'Entity type'), typeSelect),
    entityField.wrap, actorField.wrap,
    h('div', { class: 'field' }, h('span', { class: 'label', 'aria-hidden': 'true' }, '\u00a0'),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => {
          typeSelect.value = '';
          entityField.input.value = '';
          actorField.input.value = '';
          form.requestSubmit();
        } }, 'Clear'))));
  const sub = h('p', { class: 'sub' }, 'Every change, who made it and when.');
  const list = h('section', { class: 'card', 'aria-label': 'Audit entries', 'aria-busy': 'true' });
  const more = h('div', { class: 'more' });
  fill(root, adminNav('/admin/audit'),
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Audit log'), sub)),
    form, list, more);

  scope.listen(form, 'submit', (event) => {
    event.preventDefault();
    filters.entityType = typeSelect.value;
    filters.entityId = entityField.input.value.trim();
    filters.actorId = actorField.input.value.trim();
    const search = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    history.replaceState(null, '', `#/admin/audit${search ? `?${search}` : ''}`);
    load(true);
  });

  function render() {
    list.setAttribute('aria-busy', 'false');
    const filtered = filters.entityType || filters.entityId || filters.actorId;
    sub.textContent = `${total} ${total === 1 ? 'entry' : 'entries'}${filtered ? ' match these filters' : ''}.`;
    if (!entries.length) {
      fill(list, emptyState('No entries', filtered ? 'Nothing matches these filters.' : 'Nothing has happened yet.'));
      fill(more);
      return;
    }
    fill(list, h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['When', 'Actor', 'Action', 'Entity', 'Change'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, entries.map((e) => h('tr', {},
        h('td', { class: 'nowrap' }, when(e.at, 'full')),
        h('td', {}, actor(e)),
        h('td', {}, h('code', {}, e.action)),
        h('td', { class: 'nowrap' }, entityLink(e)),
        h('td', { class: 'changes' }, changes(e))))))));
    fill(more, hasNext ? h('button', { type: 'button', class: 'btn', onclick: () => load(false) }, 'Load more') : null);
  }

  async function load(reset) {
    const mine = ++request;
    if (reset) {
      list.setAttribute('aria-busy', 'true');
      fill(list, loadingState('Loading the audit log…'));
      fill(more);
    }
    try {
      const data = await query(AUDIT_LOG, {
        after: reset ? null : cursor,
        entityType: filters.entityType || null, entityId: filters.entityId || null, actorId: filters.actorId || null,
      });
      if (mine !== request || !scope.alive) return;
      const page = data.auditLog;
      entries = reset ? page.edges.map((e) => e.node) : [...entries, ...page.edges.map((e) => e.node)];
      cursor = page.pageInfo.endCursor;
      hasNext = page.pageInfo.hasNextPage;
      total = page.totalCount;
      render();
    } catch (error) {
      if (mine !== request || !scope.alive) return;
      list.setAttribute('aria-busy', 'false');
      fill(list, errorState('the audit log', error, () => load(true)));
    }
  }

  load(true);
  return { refresh: () => load(true) };
}
