// #/admin : the live order board. Orders by status in columns; new orders and status changes
// arrive through orderEvents (every order, for admins) and slide in without a reload.

import { query } from '../api.js';
import { announce } from '../feedback.js';
import { fmt, statusLabel, statusPill, timeAgo, when } from '../format.js';
import { itemCount, newer, orderActions } from '../orders.js';
import { ADMIN_ORDERS, ORDER_EVENTS } from '../queries.js';
import { addressLines, countryName } from '../shipping.js';
import { errorState, fill, h, loadingState } from '../ui.js';
import { adminNav } from './admin-nav.js';

export const title = 'Order board';
const LIMIT = 50; // the page size in ADMIN_ORDERS

const COLUMNS = [
  { key: 'pending', title: 'Awaiting payment', statuses: ['CREATED', 'PAYMENT_PENDING'], empty: 'No unpaid orders.' },
  { key: 'paid', title: 'To fulfil', statuses: ['PAID'], empty: 'Nothing to ship. Nice.' },
  { key: 'fulfilled', title: 'Fulfilled', statuses: ['FULFILLED'], empty: 'No fulfilled orders yet.' },
  { key: 'closed', title: 'Closed', statuses: ['CANCELLED', 'FAILED', 'REFUNDED'], empty: 'No cancelled, failed or refunded orders.' },
];

export function mount(root, { scope }) {
  const orders = new Map();
  const fresh = new Set();
  let loaded = false;
  const sub = h('p', { class: 'sub' }, 'Updates live as orders come in and move.');
  const board = h('div', { class: 'board', 'aria-busy': 'true' }, loadingState('Loading orders…'));
  fill(root, adminNav('/admin'),
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'Orders'), sub)),
    board);

  function card(order) {
    const isNew = fresh.has(order.id);
    fresh.delete(order.id);
    return h('article', { class: `ocard${isNew ? ' new' : ''}`, dataset: { orderId: order.id, status: order.status },
      'aria-label': `Order #${order.number}` },
    h('div', { class: 'ocard-top' },
      h('a', { class: 'ocard-no', href: `#/orders/${order.id}` }, `#${order.number}`),
      statusPill(order.status)),
    h('div', { class: 'ocard-who', title: order.customer.email }, order.customer.email),
    order.shippingAddress ? h('div', { class: 'ocard-ship', dataset: { address: '' },
      title: addressLines(order.shippingAddress).join(', ') },
    `Ship to ${addressLines(order.shippingAddress).slice(0, 1).concat(
      [order.shippingAddress.city, countryName(order.shippingAddress.country)]).join(', ')}`) : null,
    h('div', { class: 'ocard-meta' },
      h('span', {}, `${itemCount(order.items)} ${itemCount(order.items) === 1 ? 'item' : 'items'} · `, when(order.createdAt)),
      h('strong', {}, fmt(order.total))),
    h('div', { class: 'ocard-actions' }, orderActions(order, { admin: true, onDone: (changed) => upsert(changed) })));
  }

  function render() {
    if (!loaded) return;
    board.setAttribute('aria-busy', 'false');
    const all = [...orders.values()].sort((a, b) => b.number - a.number);
    const focus = focusKey();
    fill(board, COLUMNS.map((column) => {
      const inColumn = all.filter((o) => column.statuses.includes(o.status));
      const headingId = `col-${column.key}`;
      return h('section', { class: 'column', 'aria-labelledby': headingId, dataset: { column: column.key } },
        h('div', { class: 'column-head' }, h('h2', { class: 'h3', id: headingId }, column.title),
          h('span', { class: 'count', dataset: inColumn.length ? {} : { zero: '' } }, String(inColumn.length))),
        h('div', { class: 'column-body' }, inColumn.length ? inColumn.map(card)
          : h('p', { class: 'column-empty' }, column.empty)));
    }));
    restoreFocus(focus);
  }

  // Live updates redraw the board: keep keyboard focus on the same control.
  function focusKey() {
    const active = document.activeElement;
    if (!active || !board.contains(active)) return null;
    const holder = active.closest('[data-order-id]');
    return holder ? { id: holder.dataset.orderId, action: active.dataset.action || null } : null;
  }

  function restoreFocus(key) {
    if (!key) return;
    const holder = board.querySelector(`[data-order-id="${CSS.escape(key.id)}"]`);
    if (!holder) return;
    const target = (key.action && holder.querySelector(`[data-action="${key.action}"]`))
      || holder.querySelector('a');
    if (target) target.focus({ preventScroll: true });
  }

  function upsert(order, { announceIt = false } = {}) {
    const known = orders.get(order.id);
    const merged = newer(known, order);
    if (merged === known) return;
    orders.set(order.id, merged);
    if (announceIt) {
      fresh.add(order.id);
      announce(known ? `Order #${order.number} is now ${statusLabel(order.status)}.`
        : `New order #${order.number} from ${order.customer.email}, ${fmt(order.total)}.`);
    }
    render();
  }

  async function load() {
    try {
      const data = await query(ADMIN_ORDERS, {});
      if (!scope.alive) return;
      for (const { node } of data.orders.edges) {
        orders.set(node.id, newer(orders.get(node.id), node));
      }
      loaded = true;
      const total = data.orders.totalCount;
      sub.textContent = total > LIMIT
        ? `The latest ${LIMIT} of ${total} orders. Updates live as orders come in and move.`
        : `${total} ${total === 1 ? 'order' : 'orders'}. Updates live as orders come in and move.`;
      render();
    } catch (error) {
      if (!scope.alive) return;
      board.setAttribute('aria-busy', 'false');
      fill(board, errorState('orders', error, () => {
        fill(board, loadingState('Loading orders…'));
        load();
      }));
    }
  }

  scope.subscribe(ORDER_EVENTS, {}, {
    next: (data) => upsert(data.orderEvents.order, { announceIt: true }),
  });
  // "3 minutes ago" stays true.
  scope.interval(() => {
    for (const el of board.querySelectorAll('time')) el.textContent = timeAgo(el.getAttribute('datetime'));
  }, 30000);

  load();
  return { refresh: load };
}
