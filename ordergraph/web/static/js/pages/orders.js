// #/orders : my orders with status pills, kept live by orderEvents (a customer's own orders).

import { query } from '../api.js';
import { announce } from '../feedback.js';
import { fmt, statusLabel, statusPill, when } from '../format.js';
import { itemsSummary, newer } from '../orders.js';
import { MY_ORDERS, ORDER_EVENTS } from '../queries.js';
import { emptyState, errorState, fill, h, loadingState } from '../ui.js';

export const title = 'My orders';

export function mount(root, { scope }) {
  const state = { orders: new Map(), order: [], cursor: null, hasNext: false, total: 0, request: 0 };
  const sub = h('p', { class: 'sub' }, '\u00a0');
  const list = h('section', { class: 'card', 'aria-label': 'Orders', 'aria-busy': 'true' });
  const more = h('div', { class: 'more' });
  fill(root,
    h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, 'My orders'), sub)),
    list, more);

  function row(order) {
    return h('li', { dataset: { orderId: order.id } },
      h('a', { class: 'order-row', href: `#/orders/${order.id}`,
        'aria-label': `Order #${order.number}, ${statusLabel(order.status)}, ${fmt(order.total)}` },
      h('span', { class: 'order-no' }, `#${order.number}`),
      h('span', { class: 'order-what' },
        h('div', { class: 'items' }, itemsSummary(order.items)),
        h('div', { class: 'cell-sub' }, when(order.createdAt, 'full'))),
      h('span', { class: 'order-total' }, fmt(order.total)),
      statusPill(order.status)));
  }

  function render() {
    list.setAttribute('aria-busy', 'false');
    sub.textContent = state.total ? `${state.total} ${state.total === 1 ? 'order' : 'orders'}` : '\u00a0';
    if (!state.order.length) {
      fill(list, emptyState('No orders yet', 'When you buy something, it shows up here with its status, live.',
        h('a', { class: 'btn btn-primary', href: '#/' }, 'Browse the shop')));
      fill(more);
      return;
    }
    fill(list, h('ul', { class: 'order-list' }, state.order.map((id) => row(state.orders.get(id)))));
    fill(more, state.hasNext ? h('button', { type: 'button', class: 'btn', onclick: () => load(false) }, 'Load more') : null);
  }

  async function load(reset) {
    const request = ++state.request;
    if (reset) {
      list.setAttribute('aria-busy', 'true');
      fill(list, loadingState('Loading your orders…'));
      fill(more);
    }
    try {
      const data = await query(MY_ORDERS, { after: reset ? null : state.cursor });
      if (request !== state.request || !scope.alive) return;
      const page = data.myOrders;
      if (reset) {
        state.orders.clear();
        state.order = [];
      }
      for (const { node } of page.edges) {
        if (!state.orders.has(node.id)) state.order.push(node.id);
        state.orders.set(node.id, newer(state.orders.get(node.id), node));
      }
      state.cursor = page.pageInfo.endCursor;
      state.hasNext = page.pageInfo.hasNextPage;
      state.total = page.totalCount;
      render();
    } catch (error) {
      if (request !== state.request || !scope.alive) return;
      list.setAttribute('aria-busy', 'false');
      fill(list, errorState('your orders', error, () => load(true)));
    }
  }

  scope.subscribe(ORDER_EVENTS, {}, {
    next: (data) => {
      const { order } = data.orderEvents;
      const known = state.orders.get(order.id);
      if (!known) {
        state.order.unshift(order.id);
        state.total += 1;
      } else if (known.status !== order.status && order.version > known.version) {
        announce(`Order #${order.number} is now ${statusLabel(order.status)}.`);
      }
      state.orders.set(order.id, newer(known, order));
      render();
    },
  });

  load(true);
  return { refresh: () => load(true) };
}
