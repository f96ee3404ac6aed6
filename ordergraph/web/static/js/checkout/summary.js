// The checkout's order summary: the lines (each with room for a problem), subtotal, shipping
// and total, and the Pay button's amount.

import { cart } from '../cart.js';
import { fmt } from '../format.js';
import { shippingCost } from '../shipping.js';
import { fill, h } from '../ui.js';
import { freeShippingHint, lineTotal, summaryRows } from '../pages/cart-lines.js';

/** Subtotal, shipping and total: the order's once placed, else the cart's at the rates. */
export function figures(ctx) {
  const subtotal = cart.subtotal();
  if (!subtotal) return null;
  if (ctx.quoted) return ctx.quoted;
  const shipping = ctx.rates ? shippingCost(ctx.rates, subtotal) : null;
  const total = shipping ? { amount: subtotal.amount + shipping.amount, currency: subtotal.currency } : null;
  return { subtotal, shipping, total };
}

export function renderSummary(ctx) {
  const lines = cart.lines();
  const sums = figures(ctx);
  ctx.lineErrors.clear();
  fill(ctx.summary,
    h('div', { class: 'card-head' }, h('h2', {}, 'Order summary'),
      h('a', { href: '#/cart', class: 'small' }, 'Edit cart')),
    h('ul', { class: 'lines' }, lines.map((line) => summaryLine(ctx, line))),
    sums ? h('div', { class: 'card-body' }, summaryRows(sums.subtotal, null, sums.shipping),
      freeShippingHint(ctx.rates, sums.subtotal, sums.shipping)) : null);
  if (!ctx.busy) ctx.payButton.textContent = sums && sums.total ? `Pay ${fmt(sums.total)}` : 'Pay';
}

function summaryLine(ctx, line) {
  const slot = h('div', { class: 'line-warning', 'aria-live': 'polite' });
  const li = h('li', { class: 'line', dataset: { productId: line.productId } },
    h('div', {}, h('div', { class: 'line-name' }, line.name),
      h('div', { class: 'line-meta' }, `${line.quantity} × ${fmt(line.price)}`)),
    h('span'), h('span'),
    h('span', { class: 'line-total' }, fmt(lineTotal(line))),
    slot);
  ctx.lineErrors.set(line.productId, { li, slot });
  return li;
}
