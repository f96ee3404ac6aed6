// #/cart : lines with steppers and remove, live availability, subtotal, "Checkout".

import { cart } from '../cart.js';
import { toast } from '../feedback.js';
import { fmt } from '../format.js';
import { STOCK_UPDATED } from '../queries.js';
import { session } from '../session.js';
import { emptyState, fill, h } from '../ui.js';
import { shippingCost, shippingRates } from '../shipping.js';
import { freeShippingHint, lineName, lineTotal, stepper, summaryRows } from './cart-lines.js';

export const title = 'Cart';

export function mount(root, { scope, navigate }) {
  const available = new Map(); // product id -> units left (live)
  let watched = '';
  let stopStock = null;
  let rates = null; // the shop's shipping rates, once loaded

  function watch(ids) {
    const key = ids.slice().sort().join(',');
    if (key === watched) return;
    watched = key;
    if (stopStock) stopStock();
    stopStock = ids.length ? scope.subscribe(STOCK_UPDATED, { productIds: ids }, {
      next: (data) => {
        const { stock } = data.stockUpdated;
        available.set(String(stock.productId), stock.available);
        render();
      },
    }) : null;
  }

  function warning(line) {
    const left = available.get(line.productId);
    if (left === undefined || line.quantity <= left) return null;
    if (left <= 0) {
      return h('div', { class: 'line-warning', role: 'status' }, `${line.name} is sold out.`,
        h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.remove(line.productId) }, 'Remove it'));
    }
    return h('div', { class: 'line-warning', role: 'status' }, `Only ${left} left.`,
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => cart.setQuantity(line.productId, left) },
        `Change to ${left}`));
  }

  function render() {
    const lines = cart.lines();
    watch(lines.map((l) => l.productId));
    if (!lines.length) {
      fill(root,
        h('div', { class: 'page-head' }, h('h1', {}, 'Cart')),
        h('div', { class: 'card' }, emptyState('Your cart is empty', 'Add something from the shop; it stays here across visits.',
          h('a', { class: 'btn btn-primary', href: '#/' }, 'Browse the shop'))));
      return;
    }
    const focused = document.activeElement && root.contains(document.activeElement)
      ? document.activeElement.getAttribute('aria-label') : null;
    const total = cart.subtotal();
    const shipping = rates ? shippingCost(rates, total) : null;
    const checkout = h('button', { type: 'button', class: 'btn btn-primary btn-lg btn-block', onclick: () => {
      if (!session.loggedIn) {
        toast('Log in to check out. Your cart is kept.');
        navigate(`/login?next=${encodeURIComponent('/checkout')}`);
      } else {
        navigate('/checkout');
      }
    } }, 'Checkout');
    fill(root,
      h('div', { class: 'page-head' },
        h('div', {}, h('h1', {}, 'Cart'), h('p', { class: 'sub' }, `${cart.count()} ${cart.count() === 1 ? 'item' : 'items'}`)),
        h('div', { class: 'actions' }, h('a', { class: 'btn btn-ghost', href: '#/' }, 'Continue shopping'))),
      h('div', { class: 'layout-2' },
        h('section', { class: 'card', 'aria-label': 'Cart lines' },
          h('ul', { class: 'lines' }, lines.map((line) => h('li', { class: 'line', dataset: { productId: line.productId } },
            lineName(line),
            stepper(line),
            h('span', { class: 'line-total' }, fmt(lineTotal(line))),
            h('button', { type: 'button', class: 'btn btn-ghost btn-sm', 'aria-label': `Remove ${line.name}`,
              onclick: () => {
                cart.remove(line.productId);
                toast(`Removed ${line.name}.`);
              } }, 'Remove'),
            warning(line))))),
        h('aside', { class: 'card', 'aria-label': 'Summary' },
          h('div', { class: 'card-head' }, h('h2', {}, 'Summary')),
          h('div', { class: 'card-body stack' }, summaryRows(total, cart.count(), shipping),
            freeShippingHint(rates, total, shipping), checkout,
            session.loggedIn ? null : h('p', { class: 'muted small' }, 'You will be asked to log in first.')))));
    if (focused) {
      const again = [...root.querySelectorAll('[aria-label]')].find((el) => el.getAttribute('aria-label') === focused);
      if (again) again.focus();
    }
  }

  scope.add(cart.onChange(() => render()));
  render();
  shippingRates().then((loaded) => {
    rates = loaded;
    if (scope.alive && cart.count()) render();
  }, () => {
    // Without the rates the summary says "…"; the checkout page shows the cost again.
  });
  return { refresh: () => { watched = ''; render(); } };
}
