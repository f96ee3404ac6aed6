// #/orders/<id> : items, total, a timeline from `history`, the status live (orderUpdated),
// a countdown while the reservation holds, and "Cancel order" while unpaid.

import { query } from '../api.js';
import { announce } from '../feedback.js';
import { fmt, formatDateTime, statusLabel, statusPill, when } from '../format.js';
import { orderActions, timeline } from '../orders.js';
import { ORDER, ORDER_UPDATED } from '../queries.js';
import { session } from '../session.js';
import { addressBlock } from '../shipping.js';
import { ICONS, emptyState, errorState, fill, h, loadingState, svgIcon } from '../ui.js';

export const title = 'Order';

function countdownText(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return `${minutes}:${seconds}`;
}

export function mount(root, { params, scope }) {
  let order = null;
  let seenEntries = new Set();
  let countdownTimer = null;
  const statusHost = h('span', { 'aria-live': 'polite', 'aria-atomic': 'true', id: 'order-status' });
  const body = h('div', {}, loadingState('Loading the order…'));
  fill(root, body);

  function stopCountdown() {
    if (countdownTimer) clearInterval(countdownTimer);
    countdownTimer = null;
  }
  scope.add(stopCountdown);

  function countdown() {
    stopCountdown();
    if (order.status !== 'PAYMENT_PENDING' || !order.reservedUntil) return null;
    const until = new Date(order.reservedUntil).getTime();
    const text = h('span', { class: 'countdown-time' });
    const el = h('span', { class: 'countdown', role: 'timer', 'aria-live': 'off' }, svgIcon(ICONS.clock, 14), text);
    const tick = () => {
      const left = until - Date.now();
      if (left <= 0) {
        text.textContent = 'Reservation expired; the items go back on sale shortly.';
        stopCountdown();
      } else {
        text.textContent = `Items reserved for ${countdownText(left)}`;
      }
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
    return el;
  }

  function render() {
    const viewerIsAdmin = session.isAdmin;
    const entries = timeline(order.history);
    const firstRender = seenEntries.size === 0;
    fill(statusHost, statusPill(order.status, { large: true }));
    const actions = orderActions(order, {
      admin: viewerIsAdmin, size: 'md',
      onDone: (changed) => { apply(changed, false); },
    });
    fill(body,
      h('div', { class: 'page-head' },
        h('div', {},
          h('a', { class: 'back', href: viewerIsAdmin ? '#/admin' : '#/orders' }, viewerIsAdmin ? '← Order board' : '← My orders'),
          h('div', { class: 'order-head' }, h('h1', {}, `Order #${order.number}`), statusHost, countdown()),
          h('p', { class: 'sub' }, `Placed ${formatDateTime(order.createdAt)}`,
            viewerIsAdmin ? ` by ${order.customer.email}` : '')),
        h('div', { class: 'actions' }, actions)),
      h('div', { class: 'layout-2' },
        h('div', { class: 'stack' },
          h('section', { class: 'card', 'aria-labelledby': 'items-h' },
            h('div', { class: 'card-head' }, h('h2', { id: 'items-h' }, 'Items')),
            h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
              h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col', class: 'num' }, 'Qty'),
                h('th', { scope: 'col', class: 'num' }, 'Unit price'), h('th', { scope: 'col', class: 'num' }, 'Total'))),
              h('tbody', {}, order.items.map((item) => h('tr', {},
                h('td', {}, item.product.name, h('div', { class: 'cell-sub mono' }, item.product.sku)),
                h('td', { class: 'num' }, String(item.quantity)),
                h('td', { class: 'num' }, fmt(item.unitPrice)),
                h('td', { class: 'num' }, fmt(item.total))))),
              h('tfoot', {},
                order.subtotal ? [
                  h('tr', {}, h('td', { colspan: '3' }, 'Subtotal'),
                    h('td', { class: 'num', dataset: { orderSubtotal: '' } }, fmt(order.subtotal))),
                  h('tr', {}, h('td', { colspan: '3' }, 'Shipping'),
                    h('td', { class: 'num', dataset: { orderShipping: '' } },
                      order.shipping.amount ? fmt(order.shipping) : 'Free'))] : null,
                h('tr', {}, h('td', { colspan: '3' }, h('strong', {}, 'Total')),
                  h('td', { class: 'num' }, h('strong', { dataset: { orderTotal: '' } }, fmt(order.total)))))))),
          order.shippingAddress ? h('section', { class: 'card', 'aria-labelledby': 'ship-h' },
            h('div', { class: 'card-head' }, h('h2', { id: 'ship-h' }, 'Shipping to')),
            h('div', { class: 'card-body' }, addressBlock(order.shippingAddress))) : null,
          order.payment ? h('section', { class: 'card', 'aria-labelledby': 'pay-h' },
            h('div', { class: 'card-head' }, h('h2', { id: 'pay-h' }, 'Payment')),
            h('dl', { class: 'card-body kv' },
              h('dt', {}, 'Provider'), h('dd', {}, order.payment.provider === 'stripe' ? 'Stripe' : order.payment.provider),
              h('dt', {}, 'Status'), h('dd', {}, order.payment.status ? order.payment.status.replace(/_/g, ' ') : '—'),
              order.payment.lastError ? [h('dt', {}, 'Last error'), h('dd', {}, order.payment.lastError)] : null)) : null),
        h('section', { class: 'card', 'aria-labelledby': 'tl-h' },
          h('div', { class: 'card-head' }, h('h2', { id: 'tl-h' }, 'Timeline'), h('span', { class: 'muted small' }, `v${order.version}`)),
          h('ol', { class: 'timeline' }, entries.map((entry, i) => {
            const key = `${order.history[i].id}`;
            const isNew = !firstRender && !seenEntries.has(key);
            seenEntries.add(key);
            return h('li', { class: isNew ? 'new' : '', dataset: { status: entry.status || '' } },
              h('span', { class: 'dot', dataset: { status: entry.status || '' }, 'aria-hidden': 'true' }),
              h('div', { class: 'what' }, entry.title),
              entry.detail ? h('div', { class: 'why' }, entry.detail) : null,
              h('div', { class: 'when' }, when(entry.at, 'full'), ` · ${entry.actor}`));
          })))));
  }

  function apply(next, fromServerPush) {
    if (order && next.version <= order.version) return;
    const before = order ? order.status : null;
    // A subscription event may carry fewer fields than the page query: keep what it lacks.
    order = { ...(order || {}), ...next };
    render();
    if (before && before !== order.status) {
      announce(`Order #${order.number} is now ${statusLabel(order.status)}.`);
      if (fromServerPush) statusHost.querySelector('.pill').classList.add('flash');
    }
  }

  let stopLive = null;
  function live() {
    if (stopLive) stopLive();
    stopLive = scope.subscribe(ORDER_UPDATED, { id: params.id }, {
      next: (data) => apply(data.orderUpdated.order, true),
      error: (error) => {
        if (error.code !== 'UNAUTHENTICATED' && order) {
          fill(statusHost, statusPill(order.status, { large: true }));
        }
      },
    });
  }

  async function load() {
    if (!order) fill(body, loadingState('Loading the order…'));
    try {
      const data = await query(ORDER, { id: params.id });
      if (!scope.alive) return;
      if (!data.order) {
        fill(body, emptyState('Order not found', 'There is no order with this number in your account.',
          h('a', { class: 'btn', href: '#/orders' }, 'My orders')));
        return;
      }
      if (order && data.order.version < order.version) return;
      order = null;
      apply(data.order, false);
      document.title = `Order #${order.number} · ordergraph`;
      if (!stopLive) live();
    } catch (error) {
      if (!scope.alive) return;
      fill(body, errorState('the order', error, load));
    }
  }

  load();
  return { refresh: load };
}
