// Where the checkout shows what went wrong: next to a summary line, the card field, an address
// part, or the form's own message.

import { fill, h } from '../ui.js';

export function clearErrors(ctx) {
  ctx.address.clear();
  ctx.formError.textContent = '';
  ctx.cardError.textContent = '';
  ctx.cardHost.removeAttribute('aria-invalid');
  for (const { li, slot } of ctx.lineErrors.values()) {
    li.removeAttribute('data-problem');
    slot.replaceChildren();
  }
}

export function lineProblem(ctx, productId, message, action) {
  const entry = ctx.lineErrors.get(String(productId));
  if (!entry) {
    ctx.formError.textContent = message;
    return;
  }
  entry.li.dataset.problem = '';
  fill(entry.slot, h('span', {}, message), action || null);
}

export function cardProblem(ctx, message) {
  ctx.cardHost.setAttribute('aria-invalid', 'true');
  ctx.cardError.textContent = message;
}

export function addressProblem(ctx, field, message) {
  const part = /^shippingAddress\.(\w+)$/.exec(field || '');
  if (part && ctx.address.problem(part[1], message)) {
    ctx.address.focusProblem();
    ctx.formError.textContent = 'Check the shipping address.';
  } else {
    ctx.formError.textContent = message;
  }
}
