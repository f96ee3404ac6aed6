// Cart lines with quantity steppers: used by #/cart (editable) and #/checkout (summary).

import { cart, MAX_QUANTITY } from '../cart.js';
import { fmt } from '../format.js';
import { h, nextId } from '../ui.js';

export function lineTotal(line) {
  return { amount: line.price.amount * line.quantity, currency: line.price.currency };
}

/** A quantity stepper bound to the cart. */
export function stepper(line, { max = MAX_QUANTITY } = {}) {
  const id = nextId('qty');
  const input = h('input', { id, type: 'number', min: '1', max: String(max), inputmode: 'numeric',
    value: String(line.quantity) });
  const set = (quantity) => {
    const q = Math.max(1, Math.min(max, Math.floor(Number(quantity) || 1)));
    cart.setQuantity(line.productId, q);
  };
  input.addEventListener('change', () => set(input.value));
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') set(input.value);
  });
  return h('div', { class: 'stepper' },
    h('button', { type: 'button', 'aria-label': `Decrease quantity of ${line.name}`,
      disabled: line.quantity <= 1, onclick: () => set(line.quantity - 1) }, '−'),
    h('label', { for: id, class: 'sr-only' }, `Quantity of ${line.name}`),
    input,
    h('button', { type: 'button', 'aria-label': `Increase quantity of ${line.name}`,
      disabled: line.quantity >= max, onclick: () => set(line.quantity + 1) }, '+'));
}

export function lineName(line) {
  return h('div', {},
    h('div', { class: 'line-name' }, line.name),
    h('div', { class: 'line-meta' }, `${fmt(line.price)} each`));
}

/** Subtotal, shipping (null while the rates load) and the total the customer will pay. */
export function summaryRows(subtotal, count, shipping) {
  const total = shipping ? { amount: subtotal.amount + shipping.amount, currency: subtotal.currency } : subtotal;
  return h('div', { class: 'summary-rows' },
    h('div', { class: 'summary-row' }, h('span', {}, count === null ? 'Subtotal' : `Items (${count})`),
      h('span', { dataset: { subtotal: '' } }, fmt(subtotal))),
    h('div', { class: 'summary-row' }, h('span', {}, 'Shipping'),
      h('span', { dataset: { shipping: '' } }, !shipping ? '…' : shipping.amount ? fmt(shipping) : 'Free')),
    h('div', { class: 'summary-row total' }, h('span', {}, 'Total'),
      h('span', { dataset: { total: '' } }, shipping ? fmt(total) : '…')));
}

/** "Free shipping from $50.00": what the rates promise, or null. */
export function freeShippingHint(rates, subtotal, shipping) {
  if (!rates || !rates.freeShippingOver || !shipping || !shipping.amount) return null;
  const missing = { amount: rates.freeShippingOver.amount - subtotal.amount, currency: subtotal.currency };
  return h('p', { class: 'muted small', dataset: { freeShippingHint: '' } },
    `Free shipping from ${fmt(rates.freeShippingOver)}: add ${fmt(missing)} more.`);
}
