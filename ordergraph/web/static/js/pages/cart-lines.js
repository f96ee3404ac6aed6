// Cart lines with quantity steppers: used by #/cart (editable) and #/checkout (summary).

import { cart, MAX_QUANTITY } from '../cart.js';
import { fmt, h, nextId } from '../ui.js';

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

export function summaryRows(total, count) {
  return h('div', { class: 'summary-rows' },
    h('div', { class: 'summary-row' }, h('span', {}, `Items (${count})`), h('span', {}, fmt(total))),
    h('div', { class: 'summary-row' }, h('span', {}, 'Shipping'), h('span', {}, 'Free')),
    h('div', { class: 'summary-row total' }, h('span', {}, 'Total'), h('span', { dataset: { total: '' } }, fmt(total))));
}
